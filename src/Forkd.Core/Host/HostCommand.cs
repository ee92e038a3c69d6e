namespace Forkd.Core.Host;

/// <summary>Runs a host tool (ip, nft) through <see cref="ProcessRunner"/> and turns a non-zero exit into an error that quotes its stderr.</summary>
public static class HostCommand
{
    public static string Run(string exe, IEnumerable<string> args, string? stdin = null, string errorId = "HostCommandFailed")
    {
        var (code, stdout, stderr) = TryRun(exe, args, stdin);
        if (code != 0)
        {
            throw new ForkdException(errorId, ForkdErrorKind.Failed,
                $"{exe} {string.Join(' ', args)} failed (exit {code}): {stderr.Trim()}", exe);
        }

        return stdout;
    }

    public static (int Code, string Stdout, string Stderr) TryRun(string exe, IEnumerable<string> args, string? stdin = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        var outcome = ProcessRunner.Run(new ProcessSpec(exe, [.. args]) { StandardInput = stdin });
        return (outcome.ExitCode, outcome.StandardOutput, outcome.StandardError);
    }
}
