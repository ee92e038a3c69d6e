using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.PowerShell;

/// <summary>Wires engine parts that must not reference each other (the store and the child registry).</summary>
internal static class EngineHooks
{
    /// <summary>Running children of a tag, from the child registry (their VMMs map the snapshot's memory).</summary>
    public static Func<string, IReadOnlyList<string>> RunningChildrenOf(ForkdPaths paths)
    {
        var registry = new ChildRegistry(paths);
        return registry.RunningChildrenOf;
    }

    public static QemuBackend QemuBackend() => new() { TscKiloHertz = HostTsc.KiloHertz() ?? 0 };

    public static Forker Forker(ForkdPaths paths) => new(paths, QemuBackend(), new ChildRegistry(paths), new Cgroups());

    public static SnapshotBuilder SnapshotBuilder(ForkdPaths paths)
    {
        var backend = QemuBackend();
        var chooser = new AcceleratorChooser(paths, backend);
        return new SnapshotBuilder(paths, backend, new ChildRegistry(paths), chooser.ChooseAsync);
    }
}
