using Forkd.Core.Store;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Forkd.Core.Host;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>
/// Firecracker behind the engine's VMM interface. Each VM runs in its own work dir, which is also
/// the Firecracker process's working directory: disks and the vsock socket are configured by
/// paths relative to it, and Firecracker stores those relative paths in the snapshot. A child
/// started in its own work dir therefore opens its own disk files and its own vsock socket,
/// with no override calls, on every Firecracker version.
/// </summary>
public sealed partial class FirecrackerBackend : IVmmBackend
{
    public const string ApiSocketName = "fc.sock";
    public const string ConsoleLogName = "console.log";
    public const string VsockSocketName = "vsock.sock";

    /// <summary>The guest agent's vsock port (the same number as its TCP port).</summary>
    public const int AgentVsockPort = 8888;

    /// <summary>Guest CIDs 0–2 are reserved; every VM is alone behind its own vsock socket, so all use 3.</summary>
    public const int GuestCid = 3;

    /// <summary>Added to the image's kernel arguments: serial console, reboot = exit, panic = exit.</summary>
    public const string BaseBootArgs = "console=ttyS0 reboot=k panic=1";

    private readonly string? _binary;

    /// <param name="binaryPath">The firecracker executable; null finds it (<see cref="FirecrackerBinary.Locate"/>) at first use.</param>
    public FirecrackerBackend(string? binaryPath = null)
    {
        _binary = binaryPath;
    }

    public BackendKind Kind => BackendKind.Firecracker;

    public BackendCapabilities Capabilities { get; } = new()
    {
        Accelerators = [Accelerator.Kvm],
        RootDisks = false,
        Volumes = true,
        Networks = true,
        AgentTransports = [AgentTransport.Vsock, AgentTransport.Tcp],
        SnapshotKinds = SnapshotKinds.Full | SnapshotKinds.Diff,
    };

    public HostCheckResult CheckHost()
    {
        var binary = FirecrackerBinary.Locate();
        var configured = Environment.GetEnvironmentVariable(FirecrackerBinary.PathVariable);
        if (binary is null && !string.IsNullOrEmpty(configured))
        {
            return new("Firecracker", HostCheckStatus.Fail, $"{FirecrackerBinary.PathVariable} is '{configured}', which is not an executable file",
                "Point FORKD_FIRECRACKER at the firecracker binary, or unset it to use the one on PATH.");
        }

        if (binary is null)
        {
            return new("Firecracker", HostCheckStatus.Warn, "no firecracker binary (FORKD_FIRECRACKER unset, none on PATH); -Backend Firecracker is unavailable, QEMU works",
                "Only for -Backend Firecracker: install a Firecracker release binary on PATH or set FORKD_FIRECRACKER to it.");
        }

        var version = FirecrackerBinary.Version(binary);
        return version is null
            ? new("Firecracker", HostCheckStatus.Fail, $"{binary} does not run ('--version' failed)", "Replace it with a Firecracker release binary for this CPU architecture.")
            : new("Firecracker", HostCheckStatus.Pass, $"{version} at {binary}");
    }

    /// <summary>forkd's own snapshots are Firecracker snapshots: their settings are what forkd used.</summary>
    public SnapshotMetadata Adopt(string snapshotDirectory, SnapshotMetadata metadata) =>
        ForkdSnapshotLayout.WithBackendSettings(snapshotDirectory, metadata);

    public void EnsureAvailable()
    {
        if (_binary is null)
        {
            FirecrackerBinary.Require();
        }
    }

    public Task<AcceleratorChoice> ChooseAcceleratorAsync(AcceleratorPreference preference, VmBootSpec image, CancellationToken cancellationToken) =>
        preference == AcceleratorPreference.Tcg
            ? throw new ForkdException("FirecrackerNeedsKvm", ForkdErrorKind.InvalidArgument,
                "Firecracker runs guests only with KVM; -Accelerator Tcg needs -Backend Qemu", "Tcg")
            : Task.FromResult(new AcceleratorChoice(Accelerator.Kvm, "Firecracker runs on KVM only"));

    /// <summary>Firecracker records its drives in its own vmstate, by paths relative to each VM's work dir: nothing to add.</summary>
    public JsonObject SnapshotConfig(JsonObject recorded, IReadOnlyList<DriveSpec> drives)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        return recorded.DeepClone().AsObject();
    }

    /// <summary>How long a new Firecracker process may take to open its API socket.</summary>
    public TimeSpan ApiSocketWait { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Where children of forkd-made snapshots are reached over TCP when not in a namespace of their own;
    /// null is forkd's own 10.42.0.2:8888, the guest's static address behind the host tap.
    /// </summary>
    public System.Net.IPEndPoint? ForkdAgentEndpoint { get; init; }

    public async Task<IVmHandle> BootAsync(VmBootSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Accelerator != Accelerator.Kvm)
        {
            throw new ForkdException("FirecrackerNeedsKvm", ForkdErrorKind.NotSupported,
                "Firecracker runs guests only with KVM; it has no software CPU", spec.Name)
            {
                Hint = "Use -Backend Qemu where KVM cannot boot a guest; Test-ForkdHost says whether it can.",
            };
        }

        var drives = FirecrackerDrives.PrepareForBoot(spec.Drives, spec.WorkDirectory);
        var config = new JsonObject
        {
            ["backend"] = nameof(BackendKind.Firecracker),
            ["vcpuCount"] = spec.VcpuCount,
            ["memoryMiB"] = spec.MemoryMiB,
            ["guestCid"] = GuestCid,
            ["vsockSocket"] = VsockSocketName,
            ["agentVsockPort"] = AgentVsockPort,
            ["drives"] = FirecrackerDrives.ToJson(drives),
        };
        if (spec.Nic is not null)
        {
            config["nic"] = new JsonObject { ["deviceId"] = spec.Nic.DeviceId, ["tap"] = spec.Nic.TapName, ["mac"] = spec.Nic.GuestMac };
        }

        // Firecracker opens the tap at boot; a parent without a namespace of its own gets a private one.
        var netns = spec.NetworkNamespace;
        string? bootNamespace = null;
        if (spec.Nic is not null && netns is null)
        {
            netns = bootNamespace = ChildNetworks.CreateBootNamespace(spec.Nic.TapName);
        }

        FirecrackerVm vm;
        try
        {
            vm = await LaunchAsync(spec.Name, spec.WorkDirectory, netns, config, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (bootNamespace is not null)
            {
                ChildNetworks.DeleteBootNamespace(bootNamespace);
            }

            throw;
        }

        vm.OwnedNamespace = bootNamespace;
        try
        {
            var api = vm.Api;
            var bootArgs = (BaseBootArgs + " " + spec.KernelCommandLine).Trim();
            await api.PutBootSourceAsync(new FcBootSource(Path.GetFullPath(spec.KernelPath), bootArgs,
                spec.InitramfsPath is null ? null : Path.GetFullPath(spec.InitramfsPath)), cancellationToken).ConfigureAwait(false);
            foreach (var d in drives)
            {
                await api.PutDriveAsync(new FcDrive(d.Id, d.FileName, d.IsRoot, d.ReadOnly), cancellationToken).ConfigureAwait(false);
            }

            await api.PutMachineConfigAsync(new FcMachineConfiguration(spec.VcpuCount, spec.MemoryMiB), cancellationToken).ConfigureAwait(false);
            if (spec.Nic is not null)
            {
                await api.PutNetworkInterfaceAsync(new FcNetworkInterface(spec.Nic.DeviceId, spec.Nic.TapName, spec.Nic.GuestMac), cancellationToken).ConfigureAwait(false);
            }

            await api.PutVsockAsync(new FcVsock(GuestCid, VsockSocketName), cancellationToken).ConfigureAwait(false);

            // virtio-rng: clones share the parent's entropy pool; this gives the guest a fresh source (docs/firecracker.md).
            await api.PutEntropyAsync(cancellationToken).ConfigureAwait(false);
            await api.StartInstanceAsync(cancellationToken).ConfigureAwait(false);
            return vm;
        }
        catch
        {
            await vm.KillAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<IVmHandle> RestoreAsync(VmRestoreSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var snapshotDir = Path.GetDirectoryName(Path.GetFullPath(spec.Snapshot.VmStatePath))!;
        var config = (JsonObject)spec.BackendConfig.DeepClone();
        if (ForkdSnapshotLayout.IsForkdLayout(config))
        {
            // A forkd-made snapshot: the vmstate names absolute host paths; say what this host lacks before starting anything.
            _ = _binary ?? FirecrackerBinary.Require();
            ForkdSnapshotLayout.PrepareChild(config, snapshotDir, spec.WorkDirectory);
            if (ForkdAgentEndpoint is { } agent)
            {
                config["agent"] = new JsonObject { ["transport"] = "tcp", ["address"] = agent.Address.ToString(), ["port"] = agent.Port };
            }
        }
        else
        {
            var drives = FirecrackerDrives.FromJson(spec.BackendConfig["drives"] as JsonArray);
            FirecrackerDrives.PrepareForChild(drives, snapshotDir, spec.WorkDirectory, spec.DriveOverrides);
        }

        var vm = await LaunchAsync(spec.Name, spec.WorkDirectory, spec.NetworkNamespace, config, cancellationToken).ConfigureAwait(false);
        try
        {
            // One call: map memory.bin MAP_PRIVATE (copy-on-write), load device state, resume.
            await vm.Api.LoadSnapshotAsync(new FcSnapshotLoad(
                Path.GetFullPath(spec.Snapshot.VmStatePath),
                FcMemoryBackend.File(Path.GetFullPath(spec.Snapshot.MemoryPath)),
                ResumeVm: true,
                ForkdSnapshotLayout.IsForkdLayout(config) ? ForkdSnapshotLayout.NetworkOverridesFor(config, spec.NetworkNamespace) : null,
                TrackDirtyPages: TrackDirtyPages ? true : null),
                cancellationToken).ConfigureAwait(false);
            return vm;
        }
        catch
        {
            await vm.KillAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<FirecrackerVm> LaunchAsync(string name, string workDirectory, string? netns, JsonObject config, CancellationToken ct)
    {
        var binary = _binary ?? FirecrackerBinary.Require();
        Directory.CreateDirectory(workDirectory);
        var apiSocket = Path.Combine(workDirectory, ApiSocketName);
        var console = Path.Combine(workDirectory, ConsoleLogName);
        File.Delete(apiSocket);
        File.Delete(Path.Combine(workDirectory, VsockSocketName));
        var process = DetachedVmmProcess.Start([binary, "--api-sock", apiSocket], workDirectory, console, netns);
        var vm = new FirecrackerVm(name, workDirectory, process, new FirecrackerApiClient(apiSocket), config, netns);
        try
        {
            await WaitForApiAsync(apiSocket, process, console, ct).ConfigureAwait(false);
        }
        catch
        {
            await vm.KillAsync().ConfigureAwait(false);
            throw;
        }

        return vm;
    }

    /// <summary>Waits until the API socket accepts a connection (it exists a moment before it listens).</summary>
    private async Task WaitForApiAsync(string apiSocket, DetachedVmmProcess process, string console, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + ApiSocketWait;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (process.HasExited)
            {
                throw new ForkdException("FirecrackerExited", ForkdErrorKind.Failed,
                    $"Firecracker exited before opening its API socket: {Tail(console)}", apiSocket)
                {
                    Hint = "Run Test-ForkdHost: Firecracker needs /dev/kvm that can run guests.",
                };
            }

            if (File.Exists(apiSocket))
            {
                using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await probe.ConnectAsync(new UnixDomainSocketEndPoint(apiSocket), ct).ConfigureAwait(false);
                    return;
                }
                catch (SocketException)
                {
                    // bound but not listening yet
                }
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new ForkdException("FirecrackerApiTimeout", ForkdErrorKind.Timeout,
                    $"Firecracker did not open {apiSocket} within {ApiSocketWait.TotalSeconds:0} s", apiSocket);
            }

            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }

    internal static string Tail(string file)
    {
        try
        {
            var text = File.ReadAllText(file).Trim();
            return text.Length == 0 ? "(no console output)" : text.Length > 600 ? "…" + text[^600..] : text;
        }
        catch (IOException)
        {
            return "(no console log)";
        }
    }
}
