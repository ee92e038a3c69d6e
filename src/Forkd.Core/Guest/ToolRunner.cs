using Forkd.Core.Host;

namespace Forkd.Core.Guest;

/// <summary>Output of a finished helper process.</summary>
internal sealed record ToolResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs the Debian tools the image build needs (apt-get, apt-cache, dpkg-deb) through <see cref="ProcessRunner"/>; kills them on cancellation.</summary>
internal static class ToolRunner
{
    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> arguments, string? workingDirectory,
        CancellationToken cancellationToken, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var outcome = await ProcessRunner.RunAsync(new ProcessSpec(file, [.. arguments])
        {
            WorkingDirectory = workingDirectory,
            StandardInput = stdin,
            Environment = environment,
        }, cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode == ProcessRunner.NotFoundExitCode && outcome.StandardOutput.Length == 0 && outcome.StandardError.StartsWith(file + ":", StringComparison.Ordinal))
        {
            throw new ForkdException("ToolNotFound", ForkdErrorKind.NotFound, $"cannot run {outcome.StandardError}", file)
            {
                Hint = "Run tools/install-deps.sh (Debian: apt-get, dpkg-deb).",
            };
        }

        return new ToolResult(outcome.ExitCode, outcome.StandardOutput, outcome.StandardError);
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
