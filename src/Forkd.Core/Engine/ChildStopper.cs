using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>What stopping one child did; <see cref="Skipped"/> says what was left alone and why.</summary>
public sealed record ChildStopResult(bool Signalled, bool RemovedWorkDirectory, IReadOnlyList<string> Skipped);

/// <summary>
/// Ends a child and removes everything it had: VMM process, sockets and work dir, cgroup leaf, registry record.
/// The record is treated as untrusted data: the pid is signalled only when it is provably the VMM the record
/// describes, and only a real work dir of ours (right name, directly under our temp root, a directory owned
/// by the current user) is deleted, relative to an open handle on the temp root.
/// </summary>
public static class ChildStopper
{
    private const string CgroupRoot = "/sys/fs/cgroup/";

    public static async Task<ChildStopResult> StopAsync(ChildRegistry registry, ForkdChild child)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(child);
        var skipped = new List<string>();
        var signalled = false;
        if (child.ProcessStartTicks is null && registry.Get(child.Id) is { } recorded &&
            recorded.ProcessId == child.ProcessId && recorded.WorkDirectory == child.WorkDirectory)
        {
            child = recorded; // the forker's copy predates the identity the registry recorded on save
        }

        if (registry.IsOurProcess(child))
        {
            await ProcessControl.KillAndWaitAsync(child.ProcessId, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            signalled = true;
        }
        else if (child.ProcessId > 0 && ProcessControl.IsAlive(child.ProcessId, registry.ProcRoot))
        {
            skipped.Add($"pid {child.ProcessId} is not this child's VMM (start time, executable or command line differ); not signalled");
        }

        if (child.CgroupPath is not null)
        {
            if (IsChildCgroup(child.CgroupPath, child.Id))
            {
                Cgroups.TryRemove(child.CgroupPath);
            }
            else
            {
                skipped.Add($"cgroup {child.CgroupPath} is not forkd's leaf for {child.Id}; not removed");
            }
        }

        var removed = RemoveWorkDirectory(registry, child, skipped);
        if (ChildRegistry.IsValidId(child.Id))
        {
            registry.Delete(child.Id);
        }

        return new ChildStopResult(signalled, removed, skipped);
    }

    private static bool RemoveWorkDirectory(ChildRegistry registry, ForkdChild child, List<string> skipped)
    {
        var workDir = child.WorkDirectory;
        if (!WorkDirectories.IsWorkDirPath(registry.Paths, workDir, WorkDirKind.Child, WorkDirKind.Run))
        {
            skipped.Add($"'{workDir}' is not a forkd child work dir under {registry.Paths.TempDirectory}; not deleted");
            return false;
        }

        var holders = registry.VmmsNaming(workDir);
        if (holders.Count > 0)
        {
            skipped.Add($"{workDir} is still used by VMM pid {string.Join(", ", holders)}; not deleted");
            return false;
        }

        var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(workDir))!;
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(workDir));
        if (!Directory.Exists(parent))
        {
            return false;
        }

        using var root = DirectoryHandle.Open(parent);
        var facts = root.Stat(name);
        if (facts is null)
        {
            return false;
        }

        if (!facts.Value.IsDirectory || facts.Value.OwnerUid != NativeFile.EffectiveUid)
        {
            skipped.Add($"{workDir} is {(facts.Value.IsDirectory ? $"owned by uid {facts.Value.OwnerUid}" : "not a directory")}; not deleted");
            return false;
        }

        SafeDelete.DeleteEntry(root, name);
        return true;
    }

    // Cgroups.LeafPath: <root>/forkd/<id> (v2) or <root>/memory/forkd/<id> (v1).
    private static bool IsChildCgroup(string leaf, string id)
    {
        var full = Path.GetFullPath(leaf);
        return full == leaf && full.StartsWith(CgroupRoot, StringComparison.Ordinal) &&
               Path.GetFileName(full) == id && ChildRegistry.IsValidId(id) &&
               Path.GetFileName(Path.GetDirectoryName(full)) == Cgroups.GroupName;
    }
}
