using System.Text.RegularExpressions;
using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>
/// The local snapshot store: <c>&lt;data dir&gt;/snapshots/&lt;tag&gt;/</c> and the child registry beside it. It is
/// the one place snapshots are installed, replaced and removed, whoever produced them (a booted parent, an
/// imported pack, a checkpointed child): a producer writes a complete snapshot into a staging dir on the
/// store's filesystem and hands it to <see cref="Install"/>. A replace is one <c>renameat2(RENAME_EXCHANGE)</c>,
/// so at every instant the tag names the old or the new snapshot, never none; "children of this tag are
/// running" is checked here, from the registry, for every change.
/// </summary>
public sealed partial class SnapshotStore
{
    /// <param name="children">The registry of this data dir; a test may pass one that reads another /proc.</param>
    public SnapshotStore(ForkdPaths paths, ChildRegistry? children = null)
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
        Children = children ?? new ChildRegistry(paths);
    }

    public ForkdPaths Paths { get; }

    /// <summary>The children forked from this store's snapshots (their VMMs map the snapshots' memory).</summary>
    public ChildRegistry Children { get; }

    /// <summary>
    /// All snapshots, sorted by tag; <paramref name="pattern"/> is a wildcard (<c>*</c>, <c>?</c>) or null for all.
    /// A damaged snapshot (unreadable or invalid metadata) is left out and reported to <paramref name="problems"/>,
    /// so one bad directory never hides the others.
    /// </summary>
    public IReadOnlyList<SnapshotInfo> List(string? pattern = null, ICollection<ForkdException>? problems = null)
    {
        Recover();
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

            try
            {
                result.Add(Read(name, dir));
            }
            catch (ForkdException ex)
            {
                problems?.Add(ex);
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Tag, b.Tag));
        return result;
    }

    public bool Exists(string tag) => Directory.Exists(Paths.SnapshotDirectory(tag));

    /// <summary>One snapshot by exact tag; throws <c>SnapshotNotFound</c>, or <c>SnapshotMetadataInvalid</c> for a damaged one.</summary>
    public SnapshotInfo Get(string tag)
    {
        Recover();
        var dir = Paths.SnapshotDirectory(tag);
        if (!Directory.Exists(dir) || new DirectoryInfo(dir).LinkTarget is not null)
        {
            throw NotFound(tag, dir);
        }

        return Read(tag, dir);
    }

    /// <summary>
    /// The snapshot as <see cref="Get"/> reads it, or, when its metadata is damaged, a bare record of its directory:
    /// enough to confirm and remove it, since removal never needs the metadata.
    /// </summary>
    public SnapshotInfo GetForRemoval(string tag)
    {
        try
        {
            return Get(tag);
        }
        catch (ForkdException ex) when (ex.Kind == ForkdErrorKind.InvalidData)
        {
            return new SnapshotInfo { Tag = tag, Path = Paths.SnapshotDirectory(tag), CreatedBy = "(damaged)" };
        }
    }

    /// <summary>
    /// Deletes a snapshot under its tag lock. Refuses while children of it run (their memory maps it). Needs no
    /// readable metadata: a damaged snapshot can always be removed.
    /// </summary>
    public void Remove(string tag)
    {
        using var tagLock = TagLock.Acquire(Paths, tag, "Remove-ForkdSnapshot");
        RemoveHeld(tagLock);
    }

    /// <summary><see cref="Remove"/> for a caller that holds the tag's exclusive lock already (an import rolling back its own install).</summary>
    public void RemoveHeld(TagLock tagLock)
    {
        ArgumentNullException.ThrowIfNull(tagLock);
        if (tagLock.IsShared)
        {
            throw new InvalidOperationException("removing a snapshot needs the tag's exclusive lock");
        }

        var tag = tagLock.Tag;
        var dir = Paths.SnapshotDirectory(tag);
        Recover();
        if (!Directory.Exists(dir))
        {
            throw NotFound(tag, dir);
        }

        ThrowIfChildrenRun(tag, "remove it");
        ThrowIfDependents(tag); // diff snapshots over this one need its memory (SnapshotStore.Dependents.cs)
        // Rename first so a half-finished delete never looks like a valid (but damaged) snapshot; a crash after
        // the rename leaves a dead remove dir that the next store operation finishes deleting.
        var doomed = WorkDirectories.Create(Paths, WorkDirKind.Remove, tag);
        Directory.Delete(doomed);
        Directory.Move(dir, doomed);
        Failpoints.Hit("store.remove.after-rename");
        SafeDelete.Delete(doomed);
        tagLock.DeleteWhileHeld(Paths); // a removed tag leaves no lock file behind
    }

    /// <summary>
    /// Installs the complete snapshot in <paramref name="staging"/> (a work dir in the staging area) under the tag
    /// the caller holds exclusively. Its metadata is read and validated first; an existing snapshot is replaced
    /// only when <paramref name="replace"/> is set, none of its children run and no diff snapshot depends on it (unless
    /// <paramref name="keepsMemoryImage"/>: the new copy has the very same memory image, as an in-place merge does), by
    /// exchanging the two directories in one step and deleting the old one afterwards. On success <paramref name="staging"/>
    /// no longer exists.
    /// </summary>
    public SnapshotInfo Install(TagLock heldLock, string staging, bool replace, bool keepsMemoryImage = false)
    {
        ArgumentNullException.ThrowIfNull(heldLock);
        ArgumentNullException.ThrowIfNull(staging);
        if (heldLock.IsShared)
        {
            throw new InvalidOperationException("installing a snapshot needs the tag's exclusive lock");
        }

        var tag = heldLock.Tag;
        var staged = Read(tag, staging); // throws on invalid metadata: nothing damaged is ever installed
        if (!staged.IsComplete)
        {
            throw new ForkdException("SnapshotIncomplete", ForkdErrorKind.InvalidData,
                $"refusing to install '{tag}': the staged snapshot has no vmstate or memory image", tag);
        }

        var dest = Paths.SnapshotDirectory(tag);
        Directory.CreateDirectory(Paths.SnapshotsDirectory);
        File.SetUnixFileMode(staging, (UnixFileMode)0b111_101_101);
        Failpoints.Hit("store.install.before-rename");
        if (!Directory.Exists(dest))
        {
            AtomicRename.MoveNoReplace(staging, dest);
            Failpoints.Hit("store.install.after-rename");
            return Get(tag);
        }

        if (!replace)
        {
            throw Exists(tag, dest);
        }

        ThrowIfChildrenRun(tag, "replace it");
        if (!keepsMemoryImage)
        {
            ThrowIfDependents(tag, "replace it");
        }

        AtomicRename.Exchange(staging, dest);
        Failpoints.Hit("store.install.after-exchange");
        SafeDelete.Delete(staging); // now the old snapshot
        return Get(tag);
    }

    /// <summary>Refuses a change to <paramref name="tag"/> while children of it run: their VMMs map its memory file.</summary>
    public void ThrowIfChildrenRun(string tag, string action)
    {
        var running = Children.RunningChildrenOf(tag);
        if (running.Count > 0)
        {
            throw new ForkdException("SnapshotInUse", ForkdErrorKind.InUse,
                $"snapshot '{tag}' has {running.Count} running child(ren) ({string.Join(", ", running)}); stop them before you {action}",
                tag)
            { Hint = $"Get-ForkdChild -Tag {tag} | Stop-ForkdChild" };
        }
    }

    /// <summary>Refuses to create over an existing tag without -Force (checked before any work is done, and again at install).</summary>
    public void ThrowIfExists(string tag)
    {
        var dest = Paths.SnapshotDirectory(tag);
        if (Directory.Exists(dest))
        {
            throw Exists(tag, dest);
        }
    }

    /// <summary>
    /// Finishes or rolls back what a crashed store operation left in the staging area: a dead remove dir is
    /// deleted (the removal had been decided), a dead snapshot or unpack dir is deleted (the install never
    /// happened, or it happened and the dir holds the replaced copy). A dir whose creator is alive is left alone.
    /// The tag itself always names a complete snapshot, so nothing here can lose the only copy.
    /// </summary>
    public int Recover()
    {
        var root = Paths.StagingDirectory;
        if (!Directory.Exists(root))
        {
            return 0;
        }

        var removed = 0;
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var name = Path.GetFileName(dir);
            var kind = WorkDirectories.Classify(name, WorkDirRoot.Staging);
            if (kind is null || new DirectoryInfo(dir).LinkTarget is not null)
            {
                continue;
            }

            var creator = WorkDirectories.CreatorPid(name);
            if (creator is null || ProcessControl.IsAlive(creator.Value))
            {
                continue;
            }

            // Never the only complete copy of a snapshot: Remove-ForkdStaleWorkDir restores that one under its tag.
            if (kind.Kind is WorkDirKind.Remove or WorkDirKind.Snapshot && WorkDirectories.LabelOf(name, kind) is { } label && TagRule.IsValid(label) && !Directory.Exists(Paths.SnapshotDirectory(label)) &&
                (StaleWorkDirSweeper.IsCompleteSnapshot(dir) || StaleWorkDirSweeper.IsCompleteSnapshot(Path.Combine(dir, StaleWorkDirSweeper.ReplacedSnapshotDirectory))))
            {
                continue;
            }

            SafeDelete.Delete(dir);
            removed++;
        }

        return removed;
    }

    private static ForkdException Exists(string tag, string dest) =>
        new("SnapshotExists", ForkdErrorKind.AlreadyExists, $"snapshot '{tag}' already exists at {dest}", tag)
        {
            Hint = $"Pass -Force to replace it, or Remove-ForkdSnapshot -Tag {tag} first.",
        };

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
        // A diff snapshot is complete with its diff: its memory image is assembled from the chain on first fork.
        var memory = File.Exists(metadata.ResolveMemory(dir)) || (metadata.IsDiff && File.Exists(Path.Combine(dir, Path.GetFileName(metadata.MemoryDiff!))));
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
            // The schema admits only these names (any case); absent means forkd's own, a Firecracker snapshot.
            Backend = VmmNames.ParseBackend(metadata.Backend) ?? BackendKind.Firecracker,
            Accelerator = VmmNames.ParseAccelerator(metadata.Accelerator),
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
