using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>The merged snapshot and the chain it was flattened from (root to head).</summary>
public sealed record MergeResult(SnapshotInfo Snapshot, IReadOnlyList<string> Chain);

/// <summary>Merge-ForkdSnapshot: flattens a diff chain into a standalone snapshot (forkd's <c>snapshot-compact</c>).</summary>
public sealed partial class SnapshotChains
{
    /// <summary>
    /// Writes a standalone copy of <paramref name="tag"/> (verified chain, assembled memory, the head's vmstate, kernel,
    /// initramfs, root disk and volumes) under <paramref name="destinationTag"/>, or in place of <paramref name="tag"/>
    /// when that is null (one atomic exchange; refused while children of it run). Diffs over the merged tag stay valid:
    /// the merged image has the same bytes, so the same hash.
    /// </summary>
    public MergeResult Merge(string tag, string? destinationTag, bool force, string createdBy, CancellationToken cancellationToken)
    {
        TagRule.Validate(tag);
        var destination = TagRule.Validate(destinationTag ?? tag);
        var inPlace = string.Equals(destination, tag, StringComparison.Ordinal);
        using var destinationLock = TagLock.Acquire(_store.Paths, destination, "Merge-ForkdSnapshot");
        using var sourceLock = inPlace ? null : TagLock.AcquireShared(_store.Paths, tag, "Merge-ForkdSnapshot (source)");
        var head = _store.Get(tag);
        if (!head.Metadata.IsDiff)
        {
            throw new ForkdException("SnapshotNotDiff", ForkdErrorKind.InvalidArgument, $"snapshot '{tag}' is standalone already; there is no chain to merge", tag);
        }

        if (!inPlace && !force)
        {
            _store.ThrowIfExists(destination);
        }
        else if (!inPlace && _store.Exists(destination))
        {
            _store.ThrowIfNotReplaceable(destination); // its dependents are diffs of another image
        }

        var chain = Resolve(tag).Select(s => s.Tag).ToList();
        var image = PrepareMemory(head, cancellationToken);
        var staging = WorkDirectories.Create(_store.Paths, WorkDirKind.Snapshot, destination);
        try
        {
            SparseCopy.Copy(image, Path.Combine(staging, SnapshotFiles.Memory), cancellationToken);
            File.Copy(head.Metadata.ResolveVmState(head.Path), Path.Combine(staging, SnapshotFiles.VmState));
            foreach (var name in new[] { SnapshotFiles.Kernel, SnapshotFiles.Initramfs, SnapshotFiles.RootDisk, SnapshotFiles.Rootfs })
            {
                var source = Path.Combine(head.Path, name);
                if (File.Exists(source))
                {
                    NativeFile.LinkOrCopy(source, Path.Combine(staging, name));
                }
            }

            (head.Metadata with
            {
                CreatedAt = DateTimeOffset.UtcNow,
                CreatedBy = createdBy,
                VmState = SnapshotFiles.VmState,
                Memory = SnapshotFiles.Memory,
                ParentTag = null,
                ParentContentHash = null,
                MemoryDiff = null,
                Source = new SnapshotSource { Kind = "merge", ParentTag = tag, ChildId = head.Metadata.Source?.ChildId, Chain = chain },
            }).Save(staging);

            cancellationToken.ThrowIfCancellationRequested();
            // In place, the merged image has the head's bytes: diffs over the head stay valid, so they do not block it.
            var installed = _store.Install(destinationLock, staging, replace: inPlace || force, keepsMemoryImage: inPlace);
            return new MergeResult(installed, chain);
        }
        finally
        {
            SafeDelete.Delete(staging);
        }
    }
}
