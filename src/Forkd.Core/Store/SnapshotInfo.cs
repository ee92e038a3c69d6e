namespace Forkd.Core.Store;

/// <summary>A snapshot in the local store, as <c>Get-ForkdSnapshot</c> returns it.</summary>
public sealed record SnapshotInfo
{
    public required string Tag { get; init; }

    public required string Path { get; init; }

    /// <summary>Sum of the apparent sizes of snapshot.json, vmstate, rootfs.ext4 and memory.bin (forkd's <c>images</c> rule).</summary>
    public long SizeBytes { get; init; }

    /// <summary>Bytes those files really occupy on disk (zero pages kept as holes do not count).</summary>
    public long DiskBytes { get; init; }

    public bool HasRootfs { get; init; }

    /// <summary>True when both vmstate and memory.bin are present, so children can be forked from it.</summary>
    public bool IsComplete { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>What made it: our module and version, or <c>forkd</c> for snapshots without our metadata.</summary>
    public string CreatedBy { get; init; } = "forkd";

    /// <summary>The hypervisor that made it, which its children run on (forkd's own snapshots are Firecracker's).</summary>
    public BackendKind Backend { get; init; } = BackendKind.Firecracker;

    /// <summary>KVM or TCG as chosen when it was made; null when not recorded (forkd's own snapshots).</summary>
    public Accelerator? Accelerator { get; init; }

    public string? Recipe { get; init; }

    public int? MemoryMiB { get; init; }

    public SnapshotMetadata Metadata { get; init; } = new();

    public override string ToString() => Tag;
}
