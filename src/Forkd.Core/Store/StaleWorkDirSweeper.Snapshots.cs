using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>
/// The sweep never deletes the only complete copy of a snapshot. Replacing or removing a snapshot moves
/// it into a staging dir (<c>forkd-remove-&lt;tag&gt;-…</c>, itself or its <c>snapshot/</c> subdirectory) and a new
/// one is written in <c>forkd-snapshot-</c>/<c>forkd-unpack-</c> dirs; a crash between the renames can leave the
/// tag missing. Such a staging dir is restored under the tag lock (remove and snapshot dirs, whose label is
/// the tag), never deleted. An unpack dir is not a copy: its files are unverified until the install (a killed
/// import leaves every name with a half-written image), so a dead one is deleted like any work dir.
/// </summary>
public sealed partial class StaleWorkDirSweeper
{
    /// <summary>The subdirectory a replace moves the old snapshot into (PackInstaller).</summary>
    public const string ReplacedSnapshotDirectory = "snapshot";

    private static readonly WorkDirKind[] SnapshotStagingKinds = [WorkDirKind.Remove, WorkDirKind.Snapshot];

    /// <summary>Null when the entry may simply be deleted; else what to do with it instead, and why.</summary>
    private (WorkDirAction, string)? SnapshotVerdict(DirectoryHandle root, string name, WorkDirKind kind)
    {
        if (!SnapshotStagingKinds.Contains(kind) || CompleteSnapshotIn(Path.Combine(root.CanonicalPath, name)) is null)
        {
            return null;
        }

        var tag = WorkDirectories.LabelOf(name, WorkDirectories.PrefixOf(kind));
        if (tag is null)
        {
            return (WorkDirAction.Refused, "holds a complete snapshot whose tag cannot be read from the name; kept (move it under snapshots/ by hand)");
        }

        var tagDir = _paths.SnapshotDirectory(tag);
        if (Directory.Exists(tagDir))
        {
            return IsCompleteSnapshot(tagDir)
                ? null // the tag has its own complete copy: this one is a leftover
                : (WorkDirAction.Refused, $"holds a complete snapshot while snapshots/{tag} is damaged; kept");
        }

        return (WorkDirAction.WouldRestore, $"holds the only complete copy of snapshot '{tag}'; it will be restored");
    }

    private StaleWorkDir Restore(DirectoryHandle root, string name, StaleWorkDir candidate)
    {
        var tag = WorkDirectories.LabelOf(name, WorkDirectories.PrefixOf(candidate.Kind))!;
        var dir = Path.Combine(root.CanonicalPath, name);
        TagLock tagLock;
        try
        {
            tagLock = TagLock.Acquire(_paths, tag, "Remove-ForkdStaleWorkDir (restoring a snapshot)");
        }
        catch (ForkdException ex) when (ex.ErrorId == "TagInUse")
        {
            return candidate with { Action = WorkDirAction.KeptLive, IsLive = true, Reason = ex.Message };
        }

        using (tagLock)
        {
            var tagDir = _paths.SnapshotDirectory(tag);
            if (Directory.Exists(tagDir) || new DirectoryInfo(tagDir).LinkTarget is not null || CompleteSnapshotIn(dir) is not { } snapshot)
            {
                return candidate with { Action = WorkDirAction.Refused, Reason = $"snapshots/{tag} appeared meanwhile; kept, sweep again" };
            }

            PrivateDirectory.Ensure(_paths.SnapshotsDirectory);
            Directory.Move(snapshot, tagDir); // same file system (both in the data dir): atomic
            if (snapshot != dir)
            {
                SafeDelete.DeleteEntry(root, name); // the now empty remove dir
            }
        }

        return candidate with { Action = WorkDirAction.Restored, Reason = $"restored as snapshot '{tag}' (it was the only complete copy)" };
    }

    /// <summary>The directory (the staging dir itself or its <c>snapshot/</c>) holding a complete snapshot, or null.</summary>
    private static string? CompleteSnapshotIn(string dir)
    {
        if (IsCompleteSnapshot(dir))
        {
            return dir;
        }

        var inner = Path.Combine(dir, ReplacedSnapshotDirectory);
        return IsCompleteSnapshot(inner) ? inner : null;
    }

    /// <summary>Metadata that parses, a vmstate and a memory image, all regular files (no links).</summary>
    public static bool IsCompleteSnapshot(string dir)
    {
        if (!IsRealDirectory(dir) || !IsRegularFile(Path.Combine(dir, SnapshotFiles.Metadata)))
        {
            return false;
        }

        try
        {
            var metadata = SnapshotMetadata.Load(dir);
            return IsRegularFile(metadata.ResolveVmState(dir)) && IsRegularFile(metadata.ResolveMemory(dir));
        }
        catch (ForkdException)
        {
            return false; // unreadable metadata: not a usable snapshot
        }
    }

    private static bool IsRealDirectory(string path)
    {
        var info = new DirectoryInfo(path);
        return info.Exists && info.LinkTarget is null;
    }

    private static bool IsRegularFile(string path)
    {
        var info = new FileInfo(path);
        return info.Exists && info.LinkTarget is null;
    }
}
