using Forkd.Core.Guest;
using Forkd.Core.Host;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>
/// The composition root: one object, built from paths (and optionally a backend catalogue), that assembles the
/// store, the child registry, the backends, guest images, packs and host checks. Every front end (the cmdlets,
/// the service, the tests) goes through it, so what one creates the others see, and no front end wires engine
/// parts itself.
/// </summary>
public sealed class ForkdEngine
{
    /// <param name="children">The child registry; tests pass one that accepts a stand-in VMM executable.</param>
    public ForkdEngine(ForkdPaths paths, BackendCatalog? backends = null, ChildRegistry? children = null)
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
        Store = new SnapshotStore(paths, children);
        Backends = backends ?? BackendCatalog.CreateDefault(paths);
        Recipes = new RecipeImages(paths);
    }

    /// <summary>Paths from the environment (<c>FORKD_DATA_DIR</c>, <c>XDG_DATA_HOME</c>, <c>HOME</c>, <c>FORKD_CACHE_DIR</c>, <c>TMPDIR</c>).</summary>
    public static ForkdEngine FromEnvironment() => new(ForkdPaths.FromEnvironment());

    public ForkdPaths Paths { get; }

    /// <summary>Snapshots: the one install/replace/remove path, and the children that run from them.</summary>
    public SnapshotStore Store { get; }

    public ChildRegistry Children => Store.Children;

    public BackendCatalog Backends { get; }

    public RecipeImages Recipes { get; }

    public Cgroups Cgroups { get; } = new();

    /// <summary>Boots parents on <paramref name="backend"/> and saves them into the store.</summary>
    public SnapshotBuilder Snapshots(BackendKind backend = BackendKind.Qemu) => new(Store, Backends.Get(backend));

    /// <summary>Starts children; each runs on the backend its snapshot records.</summary>
    public Forker Forker => new(Store, Backends, Cgroups);

    public SandboxRunner Sandboxes(BackendKind backend = BackendKind.Qemu) => new(Store, Snapshots(backend), Forker);

    public Task<SnapshotResult> CreateSnapshotAsync(SnapshotRequest request, BackendKind backend, IProgress<SnapshotProgress>? progress,
        Action<string>? log, CancellationToken cancellationToken) =>
        Snapshots(backend).CreateAsync(request, progress, log, cancellationToken);

    public Task<IReadOnlyList<ForkOutcome>> ForkAsync(ForkRequest request, IProgress<ForkProgress>? progress, CancellationToken cancellationToken) =>
        Forker.ForkAsync(request, progress, cancellationToken);

    /// <summary>Ends a child: its VMM, work dir, cgroup and registry record.</summary>
    public Task<ChildStopResult> StopChildAsync(ForkdChild child) => ChildStopper.StopAsync(Children, child);

    /// <summary>Checkpoint-ForkdChild, Suspend-ForkdChild, Resume-ForkdChild: a running child's pause, resume and branch.</summary>
    public Checkpointer Checkpoints => new(Store, Backends);

    /// <summary>Diff chains: verification, memory assembly, Merge-ForkdSnapshot.</summary>
    public SnapshotChains Chains => new(Store);

    public PackInstaller Packs => new(Store);

    public PackWriter PackWriter => new(Paths);

    public HostChecks HostChecks => new(Paths, Backends);

    public StaleWorkDirSweeper Sweeper => new(Paths);

    public GuestImageBuilder Images => Recipes.Images;
}
