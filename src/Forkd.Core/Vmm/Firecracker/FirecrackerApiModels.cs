using System.Text.Json.Serialization;

namespace Forkd.Core.Vmm.Firecracker;

// Request bodies of the Firecracker calls forkd makes, named after the definitions in
// firecracker-api.yaml. Optional fields are null and left out of the JSON.

/// <summary>PUT /boot-source (definition BootSource).</summary>
public sealed record FcBootSource(
    [property: JsonPropertyName("kernel_image_path")] string KernelImagePath,
    [property: JsonPropertyName("boot_args")] string? BootArgs = null,
    [property: JsonPropertyName("initrd_path")] string? InitrdPath = null);

/// <summary>PUT /drives/{drive_id} (definition Drive).</summary>
public sealed record FcDrive(
    [property: JsonPropertyName("drive_id")] string DriveId,
    [property: JsonPropertyName("path_on_host")] string PathOnHost,
    [property: JsonPropertyName("is_root_device")] bool IsRootDevice,
    [property: JsonPropertyName("is_read_only")] bool IsReadOnly);

/// <summary>PATCH /drives/{drive_id} (definition PartialDrive): a new backing file after boot or load.</summary>
public sealed record FcPartialDrive(
    [property: JsonPropertyName("drive_id")] string DriveId,
    [property: JsonPropertyName("path_on_host")] string PathOnHost);

/// <summary>PUT /machine-config (definition MachineConfiguration).</summary>
public sealed record FcMachineConfiguration(
    [property: JsonPropertyName("vcpu_count")] int VcpuCount,
    [property: JsonPropertyName("mem_size_mib")] int MemSizeMib,
    [property: JsonPropertyName("smt")] bool? Smt = null,
    [property: JsonPropertyName("track_dirty_pages")] bool? TrackDirtyPages = null);

/// <summary>PUT /network-interfaces/{iface_id} (definition NetworkInterface).</summary>
public sealed record FcNetworkInterface(
    [property: JsonPropertyName("iface_id")] string IfaceId,
    [property: JsonPropertyName("host_dev_name")] string HostDevName,
    [property: JsonPropertyName("guest_mac")] string? GuestMac = null);

/// <summary>PUT /vsock (definition Vsock).</summary>
public sealed record FcVsock(
    [property: JsonPropertyName("guest_cid")] int GuestCid,
    [property: JsonPropertyName("uds_path")] string UdsPath);

/// <summary>PUT /entropy (definition EntropyDevice): a virtio-rng the guest can reseed from.</summary>
public sealed record FcEntropyDevice;

/// <summary>PUT /actions (definition InstanceActionInfo).</summary>
public sealed record FcInstanceAction([property: JsonPropertyName("action_type")] string ActionType)
{
    public static FcInstanceAction InstanceStart { get; } = new("InstanceStart");
}

/// <summary>PATCH /vm (definition Vm).</summary>
public sealed record FcVmState([property: JsonPropertyName("state")] string State)
{
    public static FcVmState Paused { get; } = new("Paused");

    public static FcVmState Resumed { get; } = new("Resumed");
}

/// <summary>PUT /snapshot/create (definition SnapshotCreateParams).</summary>
public sealed record FcSnapshotCreate(
    [property: JsonPropertyName("snapshot_path")] string SnapshotPath,
    [property: JsonPropertyName("mem_file_path")] string MemFilePath,
    [property: JsonPropertyName("snapshot_type")] string SnapshotType = "Full");

/// <summary>definition MemoryBackend.</summary>
public sealed record FcMemoryBackend(
    [property: JsonPropertyName("backend_type")] string BackendType,
    [property: JsonPropertyName("backend_path")] string BackendPath)
{
    /// <summary>Firecracker maps the file MAP_PRIVATE: children share its page cache until they write.</summary>
    public static FcMemoryBackend File(string path) => new("File", path);
}

/// <summary>PUT /snapshot/load (definition SnapshotLoadParams).</summary>
/// <param name="NetworkOverrides">Taps to open instead of those recorded in the vmstate; sent only when needed (older releases lack the field).</param>
public sealed record FcSnapshotLoad(
    [property: JsonPropertyName("snapshot_path")] string SnapshotPath,
    [property: JsonPropertyName("mem_backend")] FcMemoryBackend MemBackend,
    [property: JsonPropertyName("resume_vm")] bool ResumeVm,
    [property: JsonPropertyName("network_overrides")] IReadOnlyList<FcNetworkOverride>? NetworkOverrides = null,
    [property: JsonPropertyName("track_dirty_pages")] bool? TrackDirtyPages = null);

/// <summary>definition NetworkOverride.</summary>
public sealed record FcNetworkOverride(
    [property: JsonPropertyName("iface_id")] string IfaceId,
    [property: JsonPropertyName("host_dev_name")] string HostDevName);

/// <summary>Error body of every failed call (definition Error).</summary>
public sealed record FcError([property: JsonPropertyName("fault_message")] string? FaultMessage);

/// <summary>GET / (definition InstanceInfo).</summary>
public sealed record FcInstanceInfo(
    [property: JsonPropertyName("app_name")] string? AppName,
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("state")] string? State,
    [property: JsonPropertyName("vmm_version")] string? VmmVersion);
