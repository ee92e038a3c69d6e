using System.Globalization;
using System.Security.Cryptography;
using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>Every kind of temporary directory forkd creates.</summary>
public enum WorkDirKind
{
    /// <summary>A parent VM being booted and snapshotted.</summary>
    Parent,

    /// <summary>One fork operation's shared scratch space.</summary>
    Fork,

    /// <summary>One running child's sockets, logs and overlay.</summary>
    Child,

    /// <summary>A one-shot sandbox.</summary>
    Run,

    /// <summary>A pack being extracted before it is renamed into the store (lives in the staging dir).</summary>
    Unpack,

    /// <summary>A pack being downloaded.</summary>
    Pull,

    /// <summary>A pack being written for upload.</summary>
    Push,

    /// <summary>A pack being written before it is renamed to its destination.</summary>
    Pack,

    /// <summary>A snapshot being deleted (renamed away first; lives in the staging dir).</summary>
    Remove,

    /// <summary>A guest image being built.</summary>
    Build,

    /// <summary>A new snapshot being written before it is renamed under its tag (lives in the staging dir).</summary>
    Snapshot,

    /// <summary>A short boot that checks whether KVM can run the guest.</summary>
    Probe,
}

/// <summary>Where a kind of work dir lives: the system temp dir, or the staging dir beside the store.</summary>
public enum WorkDirRoot
{
    Temp,
    Staging,
}

public sealed record WorkDirPrefix(WorkDirKind Kind, string Prefix, WorkDirRoot Root);

/// <summary>
/// The one naming scheme for work dirs: <c>&lt;root&gt;/forkd-&lt;kind&gt;-&lt;label&gt;-&lt;pid&gt;-&lt;random&gt;</c>.
/// Creation and the stale sweep share <see cref="Prefixes"/>, so nothing is created that the sweep
/// does not know and the sweep never touches a name it did not create.
/// </summary>
public static class WorkDirectories
{
    public static readonly IReadOnlyList<WorkDirPrefix> Prefixes =
    [
        new(WorkDirKind.Parent, "forkd-parent-", WorkDirRoot.Temp),
        new(WorkDirKind.Fork, "forkd-fork-", WorkDirRoot.Temp),
        new(WorkDirKind.Child, "forkd-child-", WorkDirRoot.Temp),
        new(WorkDirKind.Run, "forkd-run-", WorkDirRoot.Temp),
        new(WorkDirKind.Pull, "forkd-pull-", WorkDirRoot.Temp),
        new(WorkDirKind.Push, "forkd-push-", WorkDirRoot.Temp),
        new(WorkDirKind.Pack, "forkd-pack-", WorkDirRoot.Temp),
        new(WorkDirKind.Build, "forkd-build-", WorkDirRoot.Temp),
        new(WorkDirKind.Unpack, "forkd-unpack-", WorkDirRoot.Staging),
        new(WorkDirKind.Remove, "forkd-remove-", WorkDirRoot.Staging),
        new(WorkDirKind.Snapshot, "forkd-snapshot-", WorkDirRoot.Staging),
        new(WorkDirKind.Probe, "forkd-probe-", WorkDirRoot.Temp),
    ];

    public static WorkDirPrefix PrefixOf(WorkDirKind kind) => Prefixes.First(p => p.Kind == kind);

    public static string RootPath(ForkdPaths paths, WorkDirRoot root)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return root == WorkDirRoot.Temp ? paths.TempDirectory : paths.StagingDirectory;
    }

    /// <summary>Creates a fresh, private (0700) work dir. <paramref name="label"/> is usually a tag.</summary>
    public static string Create(ForkdPaths paths, WorkDirKind kind, string label)
    {
        var prefix = PrefixOf(kind);
        var root = RootPath(paths, prefix.Root);
        if (prefix.Root == WorkDirRoot.Staging)
        {
            PrivateDirectory.Ensure(paths.DataDirectory, allowLink: true);
            PrivateDirectory.Ensure(root);
        }
        else
        {
            Directory.CreateDirectory(root); // the system temp dir: shared, sticky; each work dir in it is private
        }

        var safeLabel = TagRule.IsValid(label) ? label : "x";
        var suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var path = Path.Combine(root, string.Create(CultureInfo.InvariantCulture,
            $"{prefix.Prefix}{safeLabel}-{Environment.ProcessId}-{suffix}"));
        DirectoryHandle.CreateNew(path, PrivateDirectory.Mode);
        return path;
    }

    /// <summary>The pid of the process that created a work dir, from its name (<c>…-&lt;pid&gt;-&lt;random&gt;</c>), or null.</summary>
    public static int? CreatorPid(string name)
    {
        var parts = name.Split('-');
        return parts.Length >= 3 && int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 0 ? pid : null;
    }

    /// <summary>
    /// The pid of another process that created the work dir at <paramref name="path"/>, while it still runs: alive,
    /// and started no later than the dir was last written (a later start is a recycled pid). A run holds nothing open
    /// in its dir between some steps (before its VMM starts, between two files of an import), so what holds a dir
    /// open cannot alone say it is unused. This process's own dirs are left to the caller, which knows its runs.
    /// </summary>
    public static int? RunningCreator(string path, string procRoot = "/proc")
    {
        if (CreatorPid(Path.GetFileName(Path.TrimEndingDirectorySeparator(path))) is not { } pid || pid == Environment.ProcessId ||
            !ProcessControl.IsAlive(pid, procRoot))
        {
            return null;
        }

        if (ProcessControl.StartedUtc(pid, procRoot) is not { } started)
        {
            return pid; // alive but its start unknown: assume it is the creator
        }

        var written = Directory.GetLastWriteTimeUtc(path); // 1601 for a dir that is gone: then no creator runs
        return started <= written.AddSeconds(2) ? pid : null;
    }

    /// <summary>
    /// True when <paramref name="path"/> is named like a work dir of one of <paramref name="kinds"/> and sits directly
    /// in its root (the configured path or its canonical form). An empty, relative or short path never matches.
    /// </summary>
    public static bool IsWorkDirPath(ForkdPaths paths, string? path, params WorkDirKind[] kinds)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(kinds);
        if (string.IsNullOrEmpty(path) || !Path.IsPathFullyQualified(path) || path.Contains("/../", StringComparison.Ordinal) ||
            path.EndsWith("/..", StringComparison.Ordinal) || path.Contains("/./", StringComparison.Ordinal))
        {
            return false;
        }

        var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(path));
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
        foreach (var kind in kinds)
        {
            var prefix = PrefixOf(kind);
            if (Classify(name, prefix.Root) is { } found && found.Kind == kind && parent is not null &&
                RootForms(paths, prefix.Root).Contains(parent, StringComparer.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A root as configured and as the kernel resolves it (TMPDIR may be reached through a symlink).</summary>
    public static IReadOnlyList<string> RootForms(ForkdPaths paths, WorkDirRoot root)
    {
        var given = Path.TrimEndingDirectorySeparator(Path.GetFullPath(RootPath(paths, root)));
        var canonical = DirectoryHandle.TryCanonical(given);
        return canonical is null || canonical == given ? [given] : [given, canonical];
    }

    /// <summary>The label part (usually the tag) of <c>&lt;prefix&gt;&lt;label&gt;-&lt;pid&gt;[-&lt;8 hex&gt;]</c>, or null when it is not one.</summary>
    public static string? LabelOf(string name, WorkDirPrefix prefix)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(prefix);
        if (!name.StartsWith(prefix.Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var parts = name[prefix.Prefix.Length..].Split('-').ToList();
        if (parts.Count >= 3 && parts[^1].Length == 8 && parts[^1].All(Uri.IsHexDigit))
        {
            parts.RemoveAt(parts.Count - 1);
        }

        if (parts.Count < 2 || !parts[^1].All(char.IsAsciiDigit) || parts[^1].Length == 0)
        {
            return null;
        }

        var label = string.Join('-', parts.Take(parts.Count - 1));
        return TagRule.IsValid(label) ? label : null;
    }

    /// <summary>The prefix entry a name belongs to, or null when the name is not one of ours.</summary>
    public static WorkDirPrefix? Classify(string name, WorkDirRoot root)
    {
        foreach (var p in Prefixes)
        {
            if (p.Root == root && name.StartsWith(p.Prefix, StringComparison.Ordinal) && name.Length > p.Prefix.Length)
            {
                return p;
            }
        }

        return null;
    }
}
