using System.Diagnostics;

namespace Forkd.Core.Host;

/// <summary>A program to run: arguments as a list (never a shell string), optionally inside a network namespace.</summary>
public sealed record ProcessSpec(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>Run inside this network namespace (<c>ip netns exec</c>), or null for the host's.</summary>
    public string? NetworkNamespace { get; init; }

    public string? WorkingDirectory { get; init; }

    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Written to the program's stdin, which is then closed; null leaves stdin unredirected.</summary>
    public string? StandardInput { get; init; }

    /// <summary>Killed (with its process tree) after this long; null waits as long as it takes.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Capture stdout and stderr (the default); off for programs whose output goes to files of their own.</summary>
    public bool Capture { get; init; } = true;

    public override string ToString() => $"{FileName} {string.Join(' ', Arguments)}";
}

/// <summary>How a program ended.</summary>
public sealed record ProcessOutcome(int ExitCode, string StandardOutput, string StandardError, bool TimedOut)
{
    public string Output => StandardOutput + StandardError;

    /// <summary>The first non-empty line of the output of a program that exited with 0 (a version banner), else null.</summary>
    public string? FirstLine => ExitCode == 0 ? Output.Split('\n').FirstOrDefault(l => l.Length > 0) : null;
}

/// <summary>
/// The one way Forkd starts programs: argument lists, the network-namespace prefix, capture, timeouts and
/// cancellation (which kill the whole process tree) in one place. A program that cannot start is exit code 127,
/// as in a shell, so callers report "not installed" the same way everywhere.
/// </summary>
public static class ProcessRunner
{
    public const int NotFoundExitCode = 127;

    /// <summary>The argv prefix that runs a program inside a network namespace.</summary>
    public static IReadOnlyList<string> NetworkNamespacePrefix(string networkNamespace) => ["ip", "netns", "exec", networkNamespace];

    /// <summary>The start info for <paramref name="spec"/>; for callers that need the live process (VMM launchers).</summary>
    public static ProcessStartInfo StartInfo(ProcessSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var info = new ProcessStartInfo(spec.NetworkNamespace is null ? spec.FileName : "ip")
        {
            RedirectStandardOutput = spec.Capture,
            RedirectStandardError = spec.Capture,
            RedirectStandardInput = spec.StandardInput is not null,
            UseShellExecute = false,
        };
        if (spec.WorkingDirectory is not null)
        {
            info.WorkingDirectory = spec.WorkingDirectory;
        }

        if (spec.NetworkNamespace is not null)
        {
            foreach (var a in NetworkNamespacePrefix(spec.NetworkNamespace).Skip(1))
            {
                info.ArgumentList.Add(a);
            }

            info.ArgumentList.Add(spec.FileName);
        }

        foreach (var a in spec.Arguments)
        {
            info.ArgumentList.Add(a);
        }

        if (spec.Environment is not null)
        {
            foreach (var (k, v) in spec.Environment)
            {
                info.Environment[k] = v;
            }
        }

        return info;
    }

    public static async Task<ProcessOutcome> RunAsync(ProcessSpec spec, CancellationToken cancellationToken)
    {
        using var process = new Process { StartInfo = StartInfo(spec) };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new ProcessOutcome(NotFoundExitCode, "", $"{spec.FileName}: {ex.Message}", false);
        }

        var stdout = spec.Capture ? process.StandardOutput.ReadToEndAsync(CancellationToken.None) : Task.FromResult("");
        var stderr = spec.Capture ? process.StandardError.ReadToEndAsync(CancellationToken.None) : Task.FromResult("");
        if (spec.StandardInput is not null)
        {
            try
            {
                await process.StandardInput.WriteAsync(spec.StandardInput).ConfigureAwait(false);
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // it exited without reading its input; its exit code says why
            }
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (spec.Timeout is { } timeout)
        {
            limit.CancelAfter(timeout);
        }

        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            timedOut = true;
        }

        return new ProcessOutcome(timedOut ? -1 : process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false), timedOut);
    }

    /// <summary>Synchronous form for host checks and tools that run in a blink.</summary>
    public static ProcessOutcome Run(ProcessSpec spec) => RunAsync(spec, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Runs and throws <paramref name="errorId"/> (quoting stderr) unless the program exits with 0.</summary>
    public static async Task<ProcessOutcome> RunCheckedAsync(ProcessSpec spec, string errorId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var outcome = await RunAsync(spec, cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode != 0)
        {
            var tail = outcome.StandardError.Length > 2000 ? outcome.StandardError[^2000..] : outcome.StandardError;
            var why = outcome.TimedOut ? $"timed out after {spec.Timeout?.TotalSeconds:0} s" : $"failed with exit code {outcome.ExitCode}";
            throw new ForkdException(errorId, outcome.TimedOut ? ForkdErrorKind.Timeout : ForkdErrorKind.Failed,
                $"{spec} {why}: {tail.Trim()}", spec.FileName);
        }

        return outcome;
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }
}
