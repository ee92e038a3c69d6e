using System.Diagnostics;

namespace Forkd.Core.Host;

/// <summary>Runs a host tool (ip, nft) and turns a non-zero exit into an error that quotes its stderr.</summary>
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
        var start = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        try
        {
            using var p = Process.Start(start)!;
            if (stdin is not null)
            {
                p.StandardInput.Write(stdin);
                p.StandardInput.Close();
            }

            var err = p.StandardError.ReadToEndAsync();
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output, err.GetAwaiter().GetResult());
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (127, "", $"{exe}: {ex.Message}");
        }
    }
}
