using System.Diagnostics;

namespace Forkd.Core.Guest;

/// <summary>Output of a finished helper process.</summary>
internal sealed record ToolResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the Debian tools the image build needs (apt-get, apt-cache, dpkg-deb); kills them on cancellation.</summary>
internal static class ToolRunner
{
    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> arguments, string? workingDirectory,
        CancellationToken cancellationToken, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                info.Environment[k] = v;
            }
        }

        using var process = new Process { StartInfo = info };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ForkdException("ToolNotFound", ForkdErrorKind.NotFound, $"cannot run {file}: {ex.Message}", file, ex)
            {
                Hint = "Run tools/install-deps.sh (Debian: apt-get, dpkg-deb).",
            };
        }

        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }

            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        return new ToolResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    /// <summary>Runs a tool and throws <paramref name="errorId"/> unless it exits with 0.</summary>
    public static async Task<ToolResult> RunCheckedAsync(string errorId, string file, IEnumerable<string> arguments,
        string? workingDirectory, CancellationToken cancellationToken, string? stdin = null,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var args = arguments.ToList();
        var result = await RunAsync(file, args, workingDirectory, cancellationToken, stdin, environment).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            var tail = result.Stderr.Length > 2000 ? result.Stderr[^2000..] : result.Stderr;
            throw new ForkdException(errorId, ForkdErrorKind.Failed,
                $"{file} {string.Join(' ', args)} failed with exit code {result.ExitCode}: {tail.Trim()}", file);
        }

        return result;
    }
}
