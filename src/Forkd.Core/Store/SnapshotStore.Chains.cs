namespace Forkd.Core.Store;

/// <summary>
/// Chains of diff snapshots (forkd 0.5's <c>resolve_chain</c>, <c>verify_parent_hashes</c>, <c>assemble_chain_memory</c>).
/// A diff snapshot holds the pages its source child wrote over its parent's memory image and the SHA-256 of that
/// image. Forking one walks the chain root to head, checks every parent's image against the hash its child
/// recorded (hashes are cached beside each image, keyed by its stat, so an unchanged image is not hashed again),
/// and assembles the head's image once (a reflink or sparse copy of the parent's, with the diff applied), cached
/// as the snapshot's <c>memory.bin</c> under a key (<see cref="AssembledMemory"/>): children map one file, at the speed
/// of a standalone snapshot, and a cache that was changed or planted is assembled again instead of mapped.
/// In the store (not the engine) because forks, merges and pack imports all need the same verified image.
/// </summary>
public sealed partial class SnapshotStore
{
    public const int MaxChainDepth = 64;

    /// <summary>The chain of <paramref name="tag"/>, root first, head last (one element for a standalone snapshot).</summary>
    public IReadOnlyList<SnapshotInfo> ResolveChain(string tag)
    {
        var chain = new List<SnapshotInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var current = Get(tag);
        while (true)
        {
            if (!seen.Add(current.Tag) || chain.Count >= MaxChainDepth)
            {
                throw ChainBroken(tag, $"its chain loops or is deeper than {MaxChainDepth} links (at '{current.Tag}')");
            }

            chain.Add(current);
            if (!current.Metadata.IsDiff)
            {
                break;
            }

            var parentTag = current.Metadata.ParentTag!;
            if (!TagRule.IsValid(parentTag))
            {
                throw ChainBroken(tag, $"'{current.Tag}' names an invalid parent tag");
            }

            try
            {
                current = Get(parentTag);
            }
            catch (ForkdException ex) when (ex.ErrorId == "SnapshotNotFound")
            {
                throw ChainBroken(tag, $"parent '{parentTag}' of '{current.Tag}' is missing", ex);
            }
        }

        chain.Reverse();
        return chain;
    }

    /// <summary>
    /// The memory image children of <paramref name="snapshot"/> map: its own for a standalone snapshot; for a diff,
    /// the assembled image, after every link of the chain was verified. Holds each ancestor's tag lock shared meanwhile.
    /// </summary>
    public string PrepareChainMemory(SnapshotInfo snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (!snapshot.Metadata.IsDiff)
        {
            return snapshot.Metadata.ResolveMemory(snapshot.Path);
        }

        var locks = new List<TagLock>();
        try
        {
            var chain = ResolveChain(snapshot.Tag);
            foreach (var ancestor in chain.Take(chain.Count - 1))
            {
                locks.Add(TagLock.AcquireShared(Paths, ancestor.Tag, "Invoke-ForkdFork (diff chain)"));
            }

            var image = chain[0].Metadata.ResolveMemory(chain[0].Path);
            for (var i = 1; i < chain.Count; i++)
            {
                var link = chain[i];
                var parentHash = MemoryImageHash.Get(image, cancellationToken);
                if (!string.Equals(parentHash, link.Metadata.ParentContentHash, StringComparison.OrdinalIgnoreCase))
                {
                    throw ChainBroken(snapshot.Tag,
                        $"the memory image of '{chain[i - 1].Tag}' changed after '{link.Tag}' was taken from it (SHA-256 {parentHash}, recorded {link.Metadata.ParentContentHash})");
                }

                image = AssembledMemory.Ensure(link.Path, link.Metadata, image, parentHash, cancellationToken);
            }

            return image;
        }
        finally
        {
            foreach (var held in locks)
            {
                held.Dispose();
            }
        }
    }

    public static ForkdException ChainBroken(string tag, string why, Exception? inner = null) =>
        new("SnapshotChainBroken", ForkdErrorKind.InvalidData, $"snapshot '{tag}' cannot be forked: {why}", tag, inner)
        {
            Hint = "A parent snapshot was changed or removed under its diffs. Re-create the chain from a fresh child, or remove it (Remove-ForkdSnapshot -Force on its root).",
        };
}
