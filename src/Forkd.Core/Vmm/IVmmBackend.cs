using Forkd.Core.Store;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm;

/// <summary>A block device given to the guest. The root disk of big guests is attached read-only and shared.</summary>
/// <param name="AllowSharedWrite">Skip the VMM's image lock, so several children may open one writable image (forced by the user, who was warned).</param>
public sealed record DriveSpec(string Id, string HostPath, bool ReadOnly, bool IsRoot = false, bool AllowSharedWrite = false);

/// <summary>
/// A guest NIC backed by a tap device in the VMM's network namespace. Every child of a snapshot
/// gets the same MAC and guest IP, so each runs in its own namespace with a tap of the same name.
/// </summary>
public sealed record NicSpec(string TapName = "forkd-tap0", string GuestMac = "AA:FC:00:00:00:01", string DeviceId = "eth0");

/// <summary>Everything needed to cold-boot a parent VM.</summary>
public sealed record VmBootSpec
{
    public required string Name { get; init; }

    /// <summary>The VM's own work dir: sockets, logs, pid file. Created by the caller.</summary>
    public required string WorkDirectory { get; init; }

    public required string KernelPath { get; init; }

    public string? InitramfsPath { get; init; }

    /// <summary>Kernel arguments the guest image needs; the backend appends its own (console, TSC, …).</summary>
    public string KernelCommandLine { get; init; } = "";

    public int MemoryMiB { get; init; } = 256;

    public int VcpuCount { get; init; } = 1;

    public Accelerator Accelerator { get; init; } = Accelerator.Tcg;

    /// <summary>The file that will hold guest RAM for the snapshot (QEMU maps it shared from boot on).</summary>
    public required string MemoryFilePath { get; init; }

    public IReadOnlyList<DriveSpec> Drives { get; init; } = [];

    /// <summary>A network card for the guest, or null for none. Children inherit it (same tap name, MAC, IP).</summary>
    public NicSpec? Nic { get; init; }

    /// <summary>Network namespace to start the VMM in (where <see cref="NicSpec.TapName"/> lives), or null for the host namespace.</summary>
    public string? NetworkNamespace { get; init; }
}

/// <summary>The two files a saved VM consists of.</summary>
public sealed record VmSnapshotFiles(string VmStatePath, string MemoryPath);

/// <summary>Everything needed to start one child from a snapshot.</summary>
public sealed record VmRestoreSpec
{
    public required string Name { get; init; }

    public required string WorkDirectory { get; init; }

    public required VmSnapshotFiles Snapshot { get; init; }

    /// <summary>What the backend recorded at save time (<see cref="IVmHandle.BackendConfig"/>).</summary>
    public required JsonObject BackendConfig { get; init; }

    public Accelerator Accelerator { get; init; } = Accelerator.Tcg;

    /// <summary>Network namespace to start the VMM in, or null for the host namespace.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>Drives that replace the parent's (per-child copy-on-write overlays), by drive id.</summary>
    public IReadOnlyList<DriveSpec> DriveOverrides { get; init; } = [];
}

/// <summary>A running VMM process under our control.</summary>
/// <remarks>
/// Disposing a handle means the same on every backend: a VM that was not <see cref="Detach">detached</see> is killed,
/// so a handle dropped on an error path never leaves a VMM running.
/// </remarks>
public interface IVmHandle : IAsyncDisposable
{
    int ProcessId { get; }

    string WorkDirectory { get; }

    AgentEndpoint Agent { get; }

    /// <summary>Settings a child needs to restore this VM's snapshot (machine type, kernel, memory size…).</summary>
    JsonObject BackendConfig { get; }

    Task PauseAsync(CancellationToken cancellationToken);

    Task ResumeAsync(CancellationToken cancellationToken);

    /// <summary>Saves device state to <see cref="VmSnapshotFiles.VmStatePath"/>; guest RAM ends up in <see cref="VmSnapshotFiles.MemoryPath"/>.</summary>
    Task SaveAsync(VmSnapshotFiles files, CancellationToken cancellationToken);

    /// <summary>Ends the VMM process (SIGKILL) and waits for it.</summary>
    Task KillAsync();

    /// <summary>Lets the VMM outlive this process: closes control connections without stopping the VM.</summary>
    void Detach();

    /// <summary>How long a restore's stages took (VMM start, control connect, state load, resume); empty when not measured.</summary>
    Store.ChildStartStages StartStages => new();
}

/// <summary>One hypervisor. Implementations live side by side (QEMU, Firecracker) behind this interface.</summary>
public interface IVmmBackend
{
    BackendKind Kind { get; }

    BackendCapabilities Capabilities { get; }

    /// <summary>
    /// The metadata children of a snapshot in <paramref name="snapshotDirectory"/> need, completed where another tool
    /// made it (forkd records only vmstate, memory and volumes); returned unchanged when nothing is missing.
    /// </summary>
    Store.SnapshotMetadata Adopt(string snapshotDirectory, Store.SnapshotMetadata metadata);

    /// <summary>Test-ForkdHost's line for this backend: is it installed and usable here, and how to fix it.</summary>
    Host.HostCheckResult CheckHost();

    /// <summary>Fails (e.g. <c>FirecrackerNotFound</c>) before anything is booted or copied when this host cannot run the backend.</summary>
    void EnsureAvailable();

    /// <summary>Picks the accelerator for a parent booting <paramref name="image"/>, honouring the user's preference.</summary>
    Task<AcceleratorChoice> ChooseAcceleratorAsync(AcceleratorPreference preference, VmBootSpec image, CancellationToken cancellationToken);

    /// <summary>
    /// The settings children need, as stored in snapshot.json: <paramref name="recorded"/> is what the VM reported at
    /// save time, <paramref name="drives"/> the drives with paths relative to the snapshot dir.
    /// </summary>
    JsonObject SnapshotConfig(JsonObject recorded, IReadOnlyList<DriveSpec> drives);

    Task<IVmHandle> BootAsync(VmBootSpec spec, CancellationToken cancellationToken);

    /// <summary>Starts a child: a new VMM process that maps the snapshot memory copy-on-write, loads the device state and resumes.</summary>
    Task<IVmHandle> RestoreAsync(VmRestoreSpec spec, CancellationToken cancellationToken);
}
