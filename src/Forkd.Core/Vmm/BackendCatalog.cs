using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm.Firecracker;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.Core.Vmm;

/// <summary>
/// The hypervisors this engine can drive, by kind. The engine picks a backend here (by the user's choice for a
/// new snapshot, by the snapshot's record for its children) and then only asks it, through
/// <see cref="IVmmBackend"/> and its <see cref="BackendCapabilities"/>. A new backend is a folder under Vmm/
/// and one <see cref="Register"/> line in <see cref="CreateDefault"/>.
/// </summary>
public sealed class BackendCatalog
{
    private readonly Dictionary<BackendKind, Func<IVmmBackend>> _factories = [];

    public IReadOnlyCollection<BackendKind> Kinds => _factories.Keys;

    public static BackendCatalog CreateDefault(ForkdPaths paths) => new BackendCatalog()
        .Register(BackendKind.Qemu, () => new QemuBackend { TscKiloHertz = HostTsc.KiloHertz() ?? 0, Paths = paths })
        .Register(BackendKind.Firecracker, () => new FirecrackerBackend());

    public BackendCatalog Register(BackendKind kind, Func<IVmmBackend> factory)
    {
        _factories[kind] = factory ?? throw new ArgumentNullException(nameof(factory));
        return this;
    }

    public IVmmBackend Get(BackendKind kind) => _factories.TryGetValue(kind, out var factory)
        ? factory()
        : throw new ForkdException("BackendUnknown", ForkdErrorKind.NotSupported, $"no {kind} backend is registered", kind.ToString());

    /// <summary>The backend that made a snapshot: children always run on it. forkd's own snapshots, without our record, are Firecracker's.</summary>
    public IVmmBackend ForSnapshot(SnapshotMetadata metadata, string tag)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var recorded = metadata.Backend ?? nameof(BackendKind.Firecracker);
        if (!Enum.TryParse<BackendKind>(recorded, ignoreCase: true, out var kind) || !_factories.ContainsKey(kind))
        {
            throw new ForkdException("BackendUnknown", ForkdErrorKind.NotSupported,
                $"snapshot '{tag}' was made by the '{recorded}' backend, which this host does not have", tag);
        }

        return Get(kind);
    }
}
