using System.Globalization;

namespace Forkd.Core.Host;

public enum CgroupVersion
{
    None,
    V1,
    V2,
}

/// <summary>
/// Per-child memory limits. cgroup v2 where the host has it (<c>cgroup.controllers</c> at the root):
/// <c>&lt;root&gt;/forkd/&lt;child&gt;/memory.max</c>; else the v1 memory controller:
/// <c>&lt;root&gt;/memory/forkd/&lt;child&gt;/memory.limit_in_bytes</c>. Leaves are named by child id, so
/// concurrent forks never share one (forkd's <c>child-&lt;i&gt;</c> leaves did).
/// </summary>
public sealed class Cgroups
{
    public const string GroupName = "forkd";

    public Cgroups(string root = "/sys/fs/cgroup")
    {
        Root = root;
    }

    public string Root { get; }

    public CgroupVersion Version =>
        File.Exists(Path.Combine(Root, "cgroup.controllers")) ? CgroupVersion.V2
        : File.Exists(Path.Combine(Root, "memory", "memory.limit_in_bytes")) ? CgroupVersion.V1
        : CgroupVersion.None;

    /// <summary>The leaf directory for one child (it may not exist yet).</summary>
    public string LeafPath(string childId) => Version switch
    {
        CgroupVersion.V2 => Path.Combine(Root, GroupName, childId),
        CgroupVersion.V1 => Path.Combine(Root, "memory", GroupName, childId),
        _ => throw Unsupported(),
    };

    /// <summary>Creates the child's leaf, sets its memory limit and moves <paramref name="pid"/> into it. Returns the leaf path.</summary>
    public string Place(string childId, int pid, long limitBytes)
    {
        var version = Version;
        var leaf = LeafPath(childId);
        try
        {
            if (version == CgroupVersion.V2)
            {
                EnableMemoryController(Root);
                Directory.CreateDirectory(Path.Combine(Root, GroupName));
                EnableMemoryController(Path.Combine(Root, GroupName));
                Directory.CreateDirectory(leaf);
                Write(Path.Combine(leaf, "memory.max"), limitBytes);
            }
            else
            {
                Directory.CreateDirectory(leaf);
                Write(Path.Combine(leaf, "memory.limit_in_bytes"), limitBytes);
            }

            Write(Path.Combine(leaf, "cgroup.procs"), pid);
            return leaf;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryRemove(leaf);
            throw new ForkdException("CgroupFailed", ForkdErrorKind.PermissionDenied,
                $"cannot place child {childId} in cgroup {leaf}: {ex.Message}", childId, ex)
            { Hint = "Memory limits need root (or a delegated cgroup subtree)." };
        }
    }

    /// <summary>Removes a leaf once its processes are gone (a killed process leaves it a moment later). True when gone.</summary>
    public static bool TryRemove(string leaf)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                if (!Directory.Exists(leaf))
                {
                    return true;
                }

                Directory.Delete(leaf); // cgroupfs: rmdir of the directory, its control files go with it
                RemoveEmptyGroup(Path.GetDirectoryName(leaf));
                return true;
            }
            catch (IOException)
            {
                Thread.Sleep(20);
            }
            catch (UnauthorizedAccessException)
            {
                return false;
            }
        }

        return !Directory.Exists(leaf);
    }

    // The shared "forkd" group goes with its last leaf; while other children have leaves, rmdir fails and it stays.
    private static void RemoveEmptyGroup(string? group)
    {
        if (group is null || Path.GetFileName(group) != GroupName || Directory.EnumerateDirectories(group).Any())
        {
            return;
        }

        try
        {
            Directory.Delete(group);
        }
        catch (IOException)
        {
        }
    }

    private static void EnableMemoryController(string dir)
    {
        var control = Path.Combine(dir, "cgroup.subtree_control");
        if (File.Exists(control) && !File.ReadAllText(control).Split(' ', '\n').Contains("memory"))
        {
            File.WriteAllText(control, "+memory");
        }
    }

    private static void Write(string file, long value) => File.WriteAllText(file, value.ToString(CultureInfo.InvariantCulture));

    private ForkdException Unsupported() => new("CgroupUnavailable", ForkdErrorKind.NotSupported,
        $"no cgroup memory controller under {Root} (neither v2 cgroup.controllers nor v1 memory/)", Root);
}
