using System.Diagnostics;
using Forkd.Core.Guest;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>What <c>New-ForkdSnapshot</c> asks for.</summary>
public sealed record SnapshotRequest
{
    public required string Tag { get; init; }

    public required string Recipe { get; init; }

    public required string KernelPath { get; init; }

    public string? InitramfsPath { get; init; }

    /// <summary>A root disk image (big guests): attached read-only as vda to the parent and every child, never written.</summary>
    public string? RootDiskPath { get; init; }

    /// <summary>Volumes attached to the parent and every child (forkd's <c>--volume</c>).</summary>
    public IReadOnlyList<VolumeSpec> Volumes { get; init; } = [];

    public string KernelCommandLine { get; init; } = "";

    public int MemoryMiB { get; init; } = 256;

    public int VcpuCount { get; init; } = 1;

    /// <summary>Python statements run in the agent's interpreter before the save; children inherit what they leave.</summary>
    public string? WarmupCode { get; init; }

    public AcceleratorPreference Accelerator { get; init; } = AcceleratorPreference.Auto;

    /// <summary>Replace an existing snapshot of the tag (refused while its children run).</summary>
    public bool Force { get; init; }

    public string CreatedBy { get; init; } = "Forkd";

    public TimeSpan AgentTimeout { get; init; } = TimeSpan.FromSeconds(180);

    /// <summary>The image runs a warm-up process (FORKD_WARMUP_CMD): pause only once the agent reports it ready.</summary>
    public bool WaitForWarmupBridge { get; init; }

    /// <summary>How long the warm-up process may take (Chromium under TCG takes minutes).</summary>
    public TimeSpan WarmupBridgeTimeout { get; init; } = TimeSpan.FromMinutes(20);

    /// <summary>Give the guest a network card (10.42.0.2, gateway 10.42.0.1), so children can get networks of their own.</summary>
    public bool Network { get; init; }
}

/// <summary>Progress of a snapshot: a stage name and a rough percentage.</summary>
public sealed record SnapshotProgress(string Stage, int Percent);

/// <summary>The new snapshot plus how it was made.</summary>
public sealed record SnapshotResult(SnapshotInfo Snapshot, AcceleratorChoice Accelerator, TimeSpan BootTime, TimeSpan WarmupTime, TimeSpan SaveTime);

/// <summary>
/// Boots a parent, waits for its agent, runs the warm-up, pauses and saves it. Everything is written
/// into a staging dir beside the store and renamed under the tag only when complete, all under the
/// tag's exclusive lock: a failed or cancelled run leaves no VM, no work dir and no half snapshot.
/// </summary>
public sealed class SnapshotBuilder
{
    public const string KernelFile = SnapshotFiles.Kernel;
    public const string InitramfsFile = SnapshotFiles.Initramfs;
    public const string RootDiskFile = SnapshotFiles.RootDisk;
    public const string RootDriveId = "root";

    private readonly ForkdPaths _paths;
    private readonly SnapshotStore _store;
    private readonly IVmmBackend _backend;

    public SnapshotBuilder(SnapshotStore store, IVmmBackend backend)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _paths = store.Paths;
        _backend = backend ?? throw new ArgumentNullException(nameof(backend));
    }

    public async Task<SnapshotResult> CreateAsync(SnapshotRequest request, IProgress<SnapshotProgress>? progress, Action<string>? log,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tag = TagRule.Validate(request.Tag);
        RequireFile(request.KernelPath, "KernelNotFound", "kernel");
        if (request.InitramfsPath is not null)
        {
            RequireFile(request.InitramfsPath, "InitramfsNotFound", "initramfs");
        }

        if (request.RootDiskPath is not null)
        {
            RequireFile(request.RootDiskPath, "RootDiskNotFound", "root disk");
        }

        var volumes = Volumes.Validate(request.Volumes);
        _backend.Capabilities.Require(_backend.Kind, request.RootDiskPath is not null, volumes.Count > 0, request.Network);
        _backend.EnsureAvailable(); // before anything is booted or copied
        using var tagLock = TagLock.Acquire(_paths, tag, "New-ForkdSnapshot");
        // Checked before booting so a refusal costs nothing; the store checks both again at install.
        if (!request.Force)
        {
            _store.ThrowIfExists(tag);
        }
        else if (_store.Exists(tag))
        {
            _store.ThrowIfNotReplaceable(tag);
        }

        foreach (var orphan in await OrphanParents.ReapAsync(_paths).ConfigureAwait(false))
        {
            log?.Invoke($"killed an orphaned parent VM whose snapshot process is gone ({orphan})");
        }

        var staging = WorkDirectories.Create(_paths, WorkDirKind.Snapshot, tag);
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Parent, tag);
        IVmHandle? vm = null;
        try
        {
            // The snapshot carries its own kernel and initramfs: children never depend on the image cache.
            progress?.Report(new("copying kernel and initramfs", 2));
            File.Copy(request.KernelPath, Path.Combine(staging, KernelFile));
            if (request.InitramfsPath is not null)
            {
                File.Copy(request.InitramfsPath, Path.Combine(staging, InitramfsFile));
            }

            var drives = new List<DriveSpec>();
            var commandLine = request.KernelCommandLine;
            if (request.RootDiskPath is not null)
            {
                // Linked, not copied, when the cache and the store share a file system: the image is never written.
                progress?.Report(new("linking root disk", 3));
                NativeFile.LinkOrCopy(request.RootDiskPath, Path.Combine(staging, RootDiskFile));
                // Read-only for everyone, again: a tool that deleted another link to this inode may have added write bits.
                File.SetUnixFileMode(Path.Combine(staging, RootDiskFile), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                drives.Add(new DriveSpec(RootDriveId, Path.Combine(staging, RootDiskFile), ReadOnly: true, IsRoot: true));
            }

            drives.AddRange(Volumes.Drives(volumes));
            var mounts = Volumes.MountsArgument(volumes, request.RootDiskPath is not null);
            if (mounts.Length > 0)
            {
                commandLine = (commandLine + " " + mounts).Trim();
                foreach (var v in volumes)
                {
                    log?.Invoke($"volume: {v.HostPath} → {v.GuestPath} ({(v.ReadOnly ? "ro" : "rw")})");
                }
            }

            var spec = new VmBootSpec
            {
                Name = tag,
                WorkDirectory = workDir,
                KernelPath = Path.Combine(staging, KernelFile),
                InitramfsPath = request.InitramfsPath is null ? null : Path.Combine(staging, InitramfsFile),
                KernelCommandLine = request.Network ? (commandLine + " " + ChildNetworks.GuestKernelIpArgument).Trim() : commandLine,
                Nic = request.Network ? new NicSpec() : null,
                MemoryMiB = request.MemoryMiB,
                VcpuCount = request.VcpuCount,
                MemoryFilePath = Path.Combine(staging, SnapshotFiles.Memory),
                Drives = drives,
            };

            progress?.Report(new("choosing accelerator", 5));
            var choice = await _backend.ChooseAcceleratorAsync(request.Accelerator, spec, cancellationToken).ConfigureAwait(false);
            log?.Invoke($"accelerator: {choice.Accelerator.ToString().ToUpperInvariant()} ({choice.Reason}{(choice.FromCache ? ", cached verdict" : "")})");
            spec = spec with { Accelerator = choice.Accelerator };

            progress?.Report(new("booting parent VM", 10));
            var clock = Stopwatch.StartNew();
            vm = await _backend.BootAsync(spec, cancellationToken).ConfigureAwait(false);
            log?.Invoke($"parent VMM pid {vm.ProcessId}, work dir {workDir}");
            var pid = vm.ProcessId;
            progress?.Report(new("waiting for the guest agent", 20));
            var agent = await AgentWait.UntilReadyAsync(vm.Agent, request.AgentTimeout, () => ProcessControl.IsAlive(pid), cancellationToken)
                .ConfigureAwait(false);
            var bootTime = clock.Elapsed;
            log?.Invoke($"agent answered after {bootTime.TotalSeconds:0.00} s");

            clock.Restart();
            await using (agent.ConfigureAwait(false))
            {
                if (request.WaitForWarmupBridge)
                {
                    progress?.Report(new("waiting for the recipe's warm-up process", 40));
                    await WarmupBridgeWait.UntilReadyAsync(agent, request.WarmupBridgeTimeout, () => ProcessControl.IsAlive(pid), cancellationToken)
                        .ConfigureAwait(false);
                    log?.Invoke($"warm-up process ready after {clock.Elapsed.TotalSeconds:0.0} s");
                }

                if (!string.IsNullOrWhiteSpace(request.WarmupCode))
                {
                    progress?.Report(new("running warm-up", 70));
                    await WarmupRunner.RunAsync(agent, request.WarmupCode, cancellationToken).ConfigureAwait(false);
                }
            }

            // The agent connection is closed before the pause, so the saved guest sees no host attached; and the
            // guest has finished reacting to that close, or every child would repeat the reaction on resume.
            var warmupTime = clock.Elapsed;
            progress?.Report(new("pausing and saving", 85));
            await VmmQuiescence.WaitAsync(pid, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
            clock.Restart();
            await vm.PauseAsync(cancellationToken).ConfigureAwait(false);
            await vm.SaveAsync(new VmSnapshotFiles(Path.Combine(staging, SnapshotFiles.VmState), Path.Combine(staging, SnapshotFiles.Memory)),
                cancellationToken).ConfigureAwait(false);
            var saveTime = clock.Elapsed;
            // Children resolve file names against the snapshot dir, wherever it ends up: the root disk is recorded relative.
            var backendConfig = _backend.SnapshotConfig(vm.BackendConfig, [.. drives.Select(d => d.IsRoot ? d with { HostPath = RootDiskFile } : d)]);
            await vm.KillAsync().ConfigureAwait(false);
            vm = null;

            backendConfig["kernel"] = KernelFile;
            backendConfig["initrd"] = request.InitramfsPath is null ? null : InitramfsFile;
            new SnapshotMetadata
            {
                CreatedAt = DateTimeOffset.UtcNow,
                CreatedBy = request.CreatedBy,
                Backend = VmmNames.Of(_backend.Kind),
                Accelerator = VmmNames.Of(choice.Accelerator),
                Recipe = request.Recipe,
                MemoryMiB = request.MemoryMiB,
                VcpuCount = request.VcpuCount,
                Volumes = volumes,
                BackendConfig = backendConfig,
            }.Save(staging);

            progress?.Report(new("installing snapshot", 95));
            cancellationToken.ThrowIfCancellationRequested();
            Failpoints.Hit("snapshot.before-install");
            var installed = _store.Install(tagLock, staging, request.Force);
            return new SnapshotResult(installed, choice, bootTime, warmupTime, saveTime);
        }
        finally
        {
            if (vm is not null)
            {
                await vm.KillAsync().ConfigureAwait(false);
            }

            SafeDelete.Delete(workDir);
            SafeDelete.Delete(staging); // gone already when installed
        }
    }

    private static void RequireFile(string path, string errorId, string what)
    {
        if (!File.Exists(path))
        {
            throw new ForkdException(errorId, ForkdErrorKind.NotFound, $"{what} not found: {path}", path);
        }
    }
}
