using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>Packing a diff chain as manifest v2: every link root to head, its files under <c>&lt;tag&gt;/</c>.</summary>
public sealed partial class PackWriter
{
    /// <summary>The links and files of a chain pack, and the ancestors' shared tag locks held until it is written.</summary>
    private sealed class ChainPlan(IReadOnlyList<PackChainLink> links, List<Source> sources, List<TagLock> locks) : IDisposable
    {
        public IReadOnlyList<PackChainLink> Links { get; } = links;

        public List<Source> Sources { get; } = sources;

        public void Dispose()
        {
            foreach (var held in locks)
            {
                held.Dispose();
            }
        }
    }

    /// <summary>
    /// Resolves the chain of <paramref name="tag"/> (its own lock is held by the caller), holds every ancestor shared, and
    /// verifies every parent hash before a byte is packed: a pack never carries a chain that would not fork here.
    /// The root's files are packed as a standalone snapshot's; each link's with its diff, never its cached memory.bin.
    /// </summary>
    private ChainPlan PlanChain(string tag, CancellationToken ct)
    {
        var store = new SnapshotStore(_paths);
        var chain = store.ResolveChain(tag);
        var locks = new List<TagLock>();
        try
        {
            foreach (var ancestor in chain.Take(chain.Count - 1))
            {
                locks.Add(TagLock.AcquireShared(_paths, ancestor.Tag, "Export-ForkdPack (diff chain)"));
            }

            // Verifies root..parent (and assembles the parent's image), then the head's own parent hash.
            var parentImage = store.PrepareChainMemory(chain[^2], ct);
            var parentHash = MemoryImageHash.Get(parentImage, ct);
            var head = chain[^1];
            if (!string.Equals(parentHash, head.Metadata.ParentContentHash, StringComparison.OrdinalIgnoreCase))
            {
                throw SnapshotStore.ChainBroken(tag,
                    $"the memory image of '{chain[^2].Tag}' changed after '{tag}' was taken from it (SHA-256 {parentHash}, recorded {head.Metadata.ParentContentHash})");
            }

            var links = new List<PackChainLink>();
            var sources = new List<Source>();
            for (var i = 0; i < chain.Count; i++)
            {
                var link = chain[i];
                var prefix = PackManifest.PrefixOf(link.Tag);
                links.Add(new PackChainLink(link.Tag, prefix, i == 0 ? null : chain[i - 1].Tag,
                    i == 0 ? null : link.Metadata.ParentContentHash!.ToLowerInvariant()));
                sources.AddRange(CollectSources(link.Tag, link.Path, prefix, root: i == 0));
            }

            return new ChainPlan(links, sources, locks);
        }
        catch
        {
            foreach (var held in locks)
            {
                held.Dispose();
            }

            throw;
        }
    }
}
