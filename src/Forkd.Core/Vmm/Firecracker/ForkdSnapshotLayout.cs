using System.Text.Json.Nodes;
using Forkd.Core.Store;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>
/// Snapshots written by forkd 0.1.3 itself (or unpacked from its packs): <c>snapshot.json</c> holds only
/// <c>vmstate</c>, <c>memory</c> and <c>volumes</c>, often with another host's absolute paths. They are
/// Firecracker Full snapshots, so they fork on the Firecracker backend with what forkd used (spec 2.1–2.5):
/// its machine defaults, memory size = the memory image's size, the drives and tap named inside the
/// vmstate, and its guest agent on TCP 10.42.0.2:8888 (forkd configured no vsock). Nothing is written to
/// the snapshot: the settings are synthesised each time it is forked.
/// </summary>
public static class ForkdSnapshotLayout
{
    public const string LayoutName = "forkd-0.1.3";

    /// <summary>forkd's <c>BootConfig</c> default (no override existed in 0.1.3).</summary>
    public const int ForkdVcpuCount = 2;

    /// <summary>forkd's guest address (kernel <c>ip=</c> argument) and agent port.</summary>
    public const string ForkdGuestAddress = "10.42.0.2";

    public const int ForkdAgentPort = 8888;

    public const string ForkdGuestMac = "AA:FC:00:00:00:01";

    /// <summary>
    /// The hook the forker calls: a forkd-made snapshot (no backend, no backend settings of ours, vmstate
    /// present) comes back as a Firecracker one with settings from <see cref="BackendConfigFor"/>; any other
    /// snapshot, including an incomplete one, comes back unchanged.
    /// </summary>
    public static SnapshotMetadata WithBackendSettings(string snapshotDirectory, SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (metadata.Backend is not null || metadata.BackendConfig is not null
            || !File.Exists(metadata.ResolveVmState(snapshotDirectory)) || !File.Exists(metadata.ResolveMemory(snapshotDirectory)))
        {
            return metadata;
        }

        var config = BackendConfigFor(snapshotDirectory, metadata);
        return metadata with
        {
            Backend = VmmNames.Of(BackendKind.Firecracker),
            Accelerator = VmmNames.Of(Accelerator.Kvm),
            MemoryMiB = (int?)config["memoryMiB"],
            VcpuCount = ForkdVcpuCount,
            BackendConfig = config,
            Volumes = [.. metadata.Volumes, .. WritableRootAsVolume(config, metadata.Volumes)],
        };
    }

    /// <summary>
    /// Every child reopens the one rootfs path in the vmstate (no drive override exists), so a writable rootfs
    /// is one file system written by all of them — forkd's corruption bug (spec 11.2). Listed as a read-write
    /// volume mounted at <c>/</c>, the forker's shared-writable check refuses a second writer unless forced.
    /// </summary>
    private static IEnumerable<VolumeSpec> WritableRootAsVolume(JsonObject config, IReadOnlyList<VolumeSpec> volumes)
    {
        foreach (var node in config["forkdDrives"] as JsonArray ?? [])
        {
            var path = (string?)node?["path"];
            if ((bool?)node?["isRoot"] == true && (bool?)node["readOnly"] == false && path is not null && volumes.All(v => v.HostPath != path))
            {
                yield return new VolumeSpec(path, "/", ReadOnly: false);
            }
        }
    }

    /// <summary>The Firecracker backend settings forkd would have used for this snapshot directory.</summary>
    public static JsonObject BackendConfigFor(string snapshotDirectory, SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var vmstate = metadata.ResolveVmState(snapshotDirectory);
        var memory = new FileInfo(metadata.ResolveMemory(snapshotDirectory));
        var devices = FirecrackerVmState.Read(vmstate);
        var drives = new JsonArray();
        foreach (var d in devices.Drives)
        {
            var isRoot = d.IsRoot || d.Id == "rootfs";
            drives.Add(new JsonObject
            {
                ["id"] = d.Id,
                ["path"] = d.PathOnHost,
                ["isRoot"] = isRoot,
                // Unreadable feature bits: forkd's own rule (spec 1.6) — a rootfs named *.ext4 was booted read-write.
                ["readOnly"] = d.ReadOnly ?? (isRoot ? Path.GetExtension(d.PathOnHost) != ".ext4" : false),
            });
        }

        var config = new JsonObject
        {
            ["backend"] = nameof(BackendKind.Firecracker),
            ["layout"] = LayoutName,
            ["vcpuCount"] = ForkdVcpuCount,
            ["memoryMiB"] = memory.Exists ? (int)(memory.Length >> 20) : null,
            ["agent"] = new JsonObject { ["transport"] = "tcp", ["address"] = ForkdGuestAddress, ["port"] = ForkdAgentPort },
            ["forkdDrives"] = drives,
        };
        if (devices.Nics.Count > 0 && devices.Nics[0] is var nic)
        {
            config["nic"] = new JsonObject { ["deviceId"] = nic.IfaceId, ["tap"] = nic.TapName, ["mac"] = ForkdGuestMac };
        }

        return config;
    }

    /// <summary>
    /// A forkd parent booted with <c>--tap T</c> records T; a child in one of our namespaces has only
    /// <c>forkd-tap0</c>, so any other recorded name is overridden there. Null when nothing needs overriding.
    /// </summary>
    public static IReadOnlyList<FcNetworkOverride>? NetworkOverridesFor(JsonObject backendConfig, string? networkNamespace)
    {
        ArgumentNullException.ThrowIfNull(backendConfig);
        var childTap = new NicSpec().TapName;
        if (networkNamespace is null || backendConfig["nic"] is not JsonObject nic || (string?)nic["tap"] == childTap)
        {
            return null;
        }

        return [new FcNetworkOverride((string?)nic["deviceId"] ?? "eth0", childTap)];
    }

    public static bool IsForkdLayout(JsonObject? backendConfig) => (string?)backendConfig?["layout"] == LayoutName;

    /// <summary>
    /// Before a child's Firecracker starts: every file the vmstate makes it reopen must exist. Firecracker
    /// resolves a recorded relative path against its working directory (the child's work dir), so a
    /// relative rootfs path is satisfied by the snapshot's own <c>rootfs.ext4</c> when it has one.
    /// </summary>
    public static void PrepareChild(JsonObject backendConfig, string snapshotDirectory, string workDirectory)
    {
        ArgumentNullException.ThrowIfNull(backendConfig);
        workDirectory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(workDirectory));
        Directory.CreateDirectory(workDirectory);
        var packedRootfs = Path.Combine(snapshotDirectory, SnapshotFiles.Rootfs);
        foreach (var node in backendConfig["forkdDrives"] as JsonArray ?? [])
        {
            var id = (string?)node?["id"] ?? "";
            var recorded = (string?)node?["path"] ?? "";
            var isRoot = (bool?)node?["isRoot"] ?? false;
            var resolved = Path.IsPathRooted(recorded) ? recorded : Path.GetFullPath(Path.Combine(workDirectory, recorded));
            if (File.Exists(resolved))
            {
                continue;
            }

            if (isRoot && !Path.IsPathRooted(recorded) && File.Exists(packedRootfs) && resolved.StartsWith(workDirectory + "/", StringComparison.Ordinal))
            {
                Directory.CreateDirectory(Path.GetDirectoryName(resolved)!);
                File.CreateSymbolicLink(resolved, packedRootfs);
                continue;
            }

            throw isRoot ? RootfsNotFound(recorded, snapshotDirectory, File.Exists(packedRootfs)) : DriveNotFound(id, recorded);
        }
    }

    private static ForkdException RootfsNotFound(string recorded, string snapshotDirectory, bool snapshotHasRootfs) =>
        new("RootfsNotFound", ForkdErrorKind.NotFound,
            $"this forkd snapshot's vmstate makes Firecracker reopen its root filesystem at {recorded}, and there is no file there on this host", recorded)
        {
            Hint = snapshotHasRootfs
                ? $"Firecracker reopens the path recorded in the vmstate; link the snapshot's own copy there: ln -s {Path.Combine(snapshotDirectory, SnapshotFiles.Rootfs)} {recorded}"
                : $"Put the root filesystem image forkd's parent VM booted from (forkd snapshot --rootfs) at {recorded}; Firecracker reopens exactly that path on every load.",
        };

    private static ForkdException DriveNotFound(string id, string recorded) =>
        new("DriveImageNotFound", ForkdErrorKind.NotFound,
            $"this forkd snapshot's vmstate makes Firecracker reopen drive '{id}' at {recorded}, and there is no file there on this host", recorded)
        {
            Hint = $"Put the volume image (forkd snapshot --volume) at {recorded}; Firecracker reopens exactly that path on every load.",
        };
}
