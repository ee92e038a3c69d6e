using System.Globalization;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>
/// A parent VM lives only as long as the New-ForkdSnapshot that booted it. If that pwsh was killed
/// outright (no Ctrl+C, no cleanup), its daemonized QEMU would run on forever. Parent work dirs are
/// named <c>forkd-parent-&lt;tag&gt;-&lt;creator pid&gt;-&lt;random&gt;</c>, so a QEMU whose work dir names a
/// creator that no longer exists is an orphan: it is killed and its work dir removed.
/// </summary>
public static class OrphanParents
{
    /// <summary>Kills orphaned parent VMMs under this temp dir; returns the work dirs it removed.</summary>
    public static async Task<IReadOnlyList<string>> ReapAsync(ForkdPaths paths, string procRoot = "/proc")
    {
        ArgumentNullException.ThrowIfNull(paths);
        // Parent VMs and KVM probe VMs both live only inside one New-ForkdSnapshot.
        string[] prefixes = [.. new[] { WorkDirKind.Parent, WorkDirKind.Probe }.Select(k => Path.Combine(paths.TempDirectory, WorkDirectories.PrefixOf(k).Prefix))];
        var removed = new List<string>();
        foreach (var dir in Directory.EnumerateDirectories(procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            var argv = ProcessControl.CommandLine(pid, procRoot);
            // argv[0] is whatever the process chose (exec -a): the executable and owner must be QEMU's and ours.
            if (argv is null || argv.Count == 0 || ProcessControl.Executable(pid, procRoot) is not { } exe ||
                !ChildRegistry.IsKnownVmmExecutable(exe) || ProcessControl.Uid(pid, procRoot) != NativeFile.EffectiveUid)
            {
                continue;
            }

            var (workDir, prefix) = prefixes.Select(p => (ParentWorkDirOf(argv, p), p)).FirstOrDefault(x => x.Item1 is not null);
            if (workDir is null || CreatorPid(workDir, prefix) is not { } creator || ProcessControl.IsAlive(creator, procRoot))
            {
                continue;
            }

            await ProcessControl.KillAndWaitAsync(pid, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            SafeDelete.Delete(workDir);
            removed.Add(workDir);
        }

        return removed;
    }

    // The work dir is the directory of the QMP socket (or any argument path) that starts with the parent prefix.
    internal static string? ParentWorkDirOf(IReadOnlyList<string> argv, string prefix)
    {
        foreach (var arg in argv)
        {
            var at = arg.IndexOf(prefix, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }

            var rest = arg[(at + prefix.Length)..];
            var end = rest.IndexOfAny(['/', ',']);
            return prefix + (end < 0 ? rest : rest[..end]);
        }

        return null;
    }

    // forkd-parent-<label>-<pid>-<8 hex>: the pid is the second-to-last dash-separated field.
    internal static int? CreatorPid(string workDir, string prefix)
    {
        var name = workDir[prefix.Length..];
        var parts = name.Split('-');
        return parts.Length >= 3 && int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }
}
