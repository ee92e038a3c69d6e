using Forkd.Core.Host;
using System.Diagnostics;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>Finds the <c>firecracker</c> executable: <c>FORKD_FIRECRACKER</c> first, then <c>PATH</c>.</summary>
public static class FirecrackerBinary
{
    public const string PathVariable = "FORKD_FIRECRACKER";

    /// <summary>The binary's full path, or null when there is none.</summary>
    public static string? Locate(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        var explicitPath = env(PathVariable);
        if (!string.IsNullOrEmpty(explicitPath))
        {
            return ExecutableSearch.IsExecutable(explicitPath) ? Path.GetFullPath(explicitPath) : null;
        }

        return ExecutableSearch.Find("firecracker", env("PATH") ?? "");
    }

    /// <summary>Like <see cref="Locate"/>, but a missing binary is a clear error.</summary>
    public static string Require()
    {
        var explicitPath = Environment.GetEnvironmentVariable(PathVariable);
        return Locate() ?? throw new ForkdException("FirecrackerNotFound", ForkdErrorKind.NotFound,
            string.IsNullOrEmpty(explicitPath)
                ? "the Firecracker backend needs a 'firecracker' executable on PATH, and there is none"
                : $"{PathVariable} is '{explicitPath}', which is not an executable file", explicitPath)
        {
            Hint = "Install Firecracker (a release binary for this CPU) as 'firecracker' on PATH, or set FORKD_FIRECRACKER to its full path; Test-ForkdHost shows what it finds. Snapshots made by forkd need Firecracker; our own can use -Backend Qemu.",
        };
    }

    /// <summary>The first line of <c>firecracker --version</c> (e.g. "Firecracker v1.10.1"), or null.</summary>
    public static string? Version(string binary, TimeSpan? timeout = null)
    {
        var outcome = ProcessRunner.Run(new ProcessSpec(binary, ["--version"]) { Timeout = timeout ?? TimeSpan.FromSeconds(5) });
        var line = outcome.ExitCode == 0 ? outcome.StandardOutput.Split('\n').FirstOrDefault() : null;
        return string.IsNullOrWhiteSpace(line) ? null : line.Trim();
    }
}
