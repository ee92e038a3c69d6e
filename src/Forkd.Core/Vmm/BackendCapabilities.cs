using Forkd.Core.Store;

namespace Forkd.Core.Vmm;

/// <summary>Kinds of snapshot a backend can write.</summary>
[Flags]
public enum SnapshotKinds
{
    None = 0,

    /// <summary>Device state plus all of guest memory.</summary>
    Full = 1,

    /// <summary>Only the pages written since the VM was restored, over its parent's memory image.</summary>
    Diff = 2,
}

/// <summary>What a backend can do; the engine asks this instead of branching on a backend's name.</summary>
public sealed record BackendCapabilities
{
    public required IReadOnlyList<Accelerator> Accelerators { get; init; }

    /// <summary>A read-only root disk shared by parent and children (big guests).</summary>
    public bool RootDisks { get; init; }

    /// <summary>Host files or block devices attached as extra drives (forkd's <c>--volume</c>).</summary>
    public bool Volumes { get; init; }

    /// <summary>A NIC on a tap device, so children can run in network namespaces of their own.</summary>
    public bool Networks { get; init; }

    public required IReadOnlyList<AgentTransport> AgentTransports { get; init; }

    public SnapshotKinds SnapshotKinds { get; init; } = SnapshotKinds.Full;

    /// <summary>Refuses a request this backend cannot serve, naming the missing capability.</summary>
    public void Require(BackendKind kind, bool rootDisk, bool volumes, bool network, Accelerator? accelerator = null)
    {
        void Refuse(string what) => throw new ForkdException("BackendCapabilityMissing", ForkdErrorKind.NotSupported,
            $"the {kind} backend does not support {what}", kind.ToString())
        { Hint = "Choose another -Backend, or leave the option out." };

        if (rootDisk && !RootDisks)
        {
            Refuse("root disks");
        }

        if (volumes && !Volumes)
        {
            Refuse("volumes");
        }

        if (network && !Networks)
        {
            Refuse("networks");
        }

        if (accelerator is { } a && !Accelerators.Contains(a))
        {
            Refuse($"the {a} accelerator");
        }
    }
}
