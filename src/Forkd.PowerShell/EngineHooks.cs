using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
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

    /// <summary>Children always use the backend recorded in their snapshot (forkd's own snapshots, without the field, are Firecracker's).</summary>
    public static Forker Forker(ForkdPaths paths, string tag)
    {
        var kind = BackendKind.Qemu;
        try
        {
            var recorded = new SnapshotStore(paths).Get(tag).Metadata.Backend ?? nameof(BackendKind.Firecracker);
            kind = Enum.TryParse<BackendKind>(recorded, ignoreCase: true, out var k) ? k : BackendKind.Qemu;
        }
        catch (Forkd.Core.ForkdException)
        {
            // the forker reports a missing or broken snapshot itself
        }

        return new(paths, kind == BackendKind.Firecracker ? new FirecrackerBackend() : QemuBackend(), new ChildRegistry(paths), new Cgroups());
    }

    public static SnapshotBuilder SnapshotBuilder(ForkdPaths paths, BackendKind kind = BackendKind.Qemu)
    {
        if (kind == BackendKind.Firecracker)
        {
            FirecrackerBinary.Require(); // fail before anything is booted or copied
            return new SnapshotBuilder(paths, new FirecrackerBackend(), new ChildRegistry(paths), (preference, _, _) =>
                preference == AcceleratorPreference.Tcg
                    ? throw new Forkd.Core.ForkdException("FirecrackerNeedsKvm", Forkd.Core.ForkdErrorKind.InvalidArgument,
                        "Firecracker runs guests only with KVM; -Accelerator Tcg needs -Backend Qemu", "Tcg")
                    : Task.FromResult(new AcceleratorChoice(Accelerator.Kvm, "Firecracker runs on KVM only")));
        }

        var backend = QemuBackend();
        var chooser = new AcceleratorChooser(paths, backend);
        return new SnapshotBuilder(paths, backend, new ChildRegistry(paths), chooser.ChooseAsync);
    }
}
