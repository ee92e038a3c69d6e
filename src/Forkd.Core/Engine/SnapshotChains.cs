using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>
/// Diff chains for the engine: resolving, verifying and assembling live in the store
/// (<see cref="SnapshotStore.ResolveChain"/>, <see cref="SnapshotStore.PrepareChainMemory"/>), which forks, merges and
/// pack imports share; merging (SnapshotChainsMerge.cs) is here.
/// </summary>
public sealed partial class SnapshotChains
{
    public const int MaxDepth = SnapshotStore.MaxChainDepth;

    private readonly SnapshotStore _store;

    public SnapshotChains(SnapshotStore store) => _store = store ?? throw new ArgumentNullException(nameof(store));

    /// <summary>The chain of <paramref name="tag"/>, root first, head last (one element for a standalone snapshot).</summary>
    public IReadOnlyList<SnapshotInfo> Resolve(string tag) => _store.ResolveChain(tag);

    /// <summary>
    /// The memory image children of <paramref name="snapshot"/> map: its own for a standalone snapshot; for a diff,
    /// the assembled image, after every link of the chain was verified.
    /// </summary>
    public string PrepareMemory(SnapshotInfo snapshot, CancellationToken cancellationToken) => _store.PrepareChainMemory(snapshot, cancellationToken);

    public static ForkdException Broken(string tag, string why, Exception? inner = null) => SnapshotStore.ChainBroken(tag, why, inner);
}
