using System.Text.RegularExpressions;
using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>The local snapshot store: <c>&lt;data dir&gt;/snapshots/&lt;tag&gt;/</c>.</summary>
public sealed class SnapshotStore
{
    public SnapshotStore(ForkdPaths paths)
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
    }

    public ForkdPaths Paths { get; }

    /// <summary>
    /// Asked before a snapshot is removed; returns the ids of running children that still map its memory.
    /// The engine registers the child registry here so the store does not depend on it.
    /// </summary>
    public Func<string, IReadOnlyList<string>>? RunningChildrenOf { get; init; }

    /// <summary>All snapshots, sorted by tag; <paramref name="pattern"/> is a wildcard (<c>*</c>, <c>?</c>) or null for all.</summary>
    public IReadOnlyList<SnapshotInfo> List(string? pattern = null)
    {
        var root = Paths.SnapshotsDirectory;
        if (!Directory.Exists(root))
        {
            return [];
        }

        var match = pattern is null ? null : WildcardToRegex(pattern);
        var result = new List<SnapshotInfo>();
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var name = Path.GetFileName(dir);
            // Only entries that are valid tags are snapshots; staging and stray names are not listed.
            if (!TagRule.IsValid(name) || (match is not null && !match.IsMatch(name)))
            {
                continue;
            }

            if (new DirectoryInfo(dir).LinkTarget is not null)
            {
                continue; // a symlinked "snapshot" could point anywhere; never treat it as ours
            }

            result.Add(Read(name, dir));
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Tag, b.Tag));
        return result;
    }

    public bool Exists(string tag) => Directory.Exists(Paths.SnapshotDirectory(tag));

    /// <summary>One snapshot by exact tag; throws <c>SnapshotNotFound</c>.</summary>
    public SnapshotInfo Get(string tag)
    {
        var dir = Paths.SnapshotDirectory(tag);
        if (!Directory.Exists(dir))
        {
            throw NotFound(tag, dir);
        }

        return Read(tag, dir);
    }

    /// <summary>Deletes a snapshot under its tag lock. Refuses while children of it run (their memory maps it).</summary>
    public void Remove(string tag)
    {
        var dir = Paths.SnapshotDirectory(tag);
        using var tagLock = TagLock.Acquire(Paths, tag, "Remove-ForkdSnapshot");
        if (!Directory.Exists(dir))
        {
            throw NotFound(tag, dir);
        }

        var running = RunningChildrenOf?.Invoke(tag) ?? [];
        if (running.Count > 0)
        {
            throw new ForkdException("SnapshotInUse", ForkdErrorKind.InUse,
                $"snapshot '{tag}' has {running.Count} running child(ren) ({string.Join(", ", running)}); stop them first",
                tag)
            { Hint = $"Get-ForkdChild -Tag {tag} | Stop-ForkdChild" };
        }

        // Rename first so a half-finished delete never looks like a valid (but damaged) snapshot.
        Directory.CreateDirectory(Paths.StagingDirectory);
        var doomed = Path.Combine(Paths.StagingDirectory, $"forkd-remove-{tag}-{Environment.ProcessId}");
        SafeDelete.Delete(doomed);
        Directory.Move(dir, doomed);
        SafeDelete.Delete(doomed);
    }

    public static ForkdException NotFound(string tag, string dir) =>
        new("SnapshotNotFound", ForkdErrorKind.NotFound, $"snapshot tag '{tag}' not found at {dir}", tag)
        {
            Hint = $"Create it with New-ForkdSnapshot -Tag {tag} or import a pack with Import-ForkdPack.",
        };

    private static SnapshotInfo Read(string tag, string dir)
    {
        var metadata = SnapshotMetadata.Load(dir);
        long size = 0, disk = 0;
        foreach (var name in SnapshotFiles.Known)
        {
            if (SnapshotFiles.TryListedSize(Path.Combine(dir, name), out var apparent, out var allocated))
            {
                size += apparent;
                disk += allocated;
            }
        }

        var vmstate = File.Exists(Path.Combine(dir, SnapshotFiles.VmState));
        var memory = File.Exists(metadata.ResolveMemory(dir));
        return new SnapshotInfo
        {
            Tag = tag,
            Path = dir,
            SizeBytes = size,
            DiskBytes = disk,
            HasRootfs = SnapshotFiles.TryListedSize(Path.Combine(dir, SnapshotFiles.Rootfs), out _, out _),
            IsComplete = vmstate && memory,
            CreatedAt = metadata.CreatedAt ?? new DateTimeOffset(Directory.GetCreationTimeUtc(dir), TimeSpan.Zero),
            CreatedBy = metadata.CreatedBy ?? "forkd",
            Backend = metadata.Backend ?? "firecracker",
            Accelerator = metadata.Accelerator,
            Recipe = metadata.Recipe,
            MemoryMiB = metadata.MemoryMiB,
            Metadata = metadata,
        };
    }

    internal static Regex WildcardToRegex(string pattern)
    {
        var escaped = Regex.Escape(pattern).Replace(@"\*", ".*", StringComparison.Ordinal).Replace(@"\?", ".", StringComparison.Ordinal);
        return new Regex("^" + escaped + "$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);
    }
}
