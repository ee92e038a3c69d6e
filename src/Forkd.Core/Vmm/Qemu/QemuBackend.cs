using Forkd.Core.Host;
using Forkd.Core.Store;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// QEMU as a fork-from-warm VMM: the parent's RAM lives in a shared file-backed region, the save is a
/// migration of device state only (<c>x-ignore-shared</c>), and each child maps that file private
/// (copy-on-write) and loads the device state with <c>migrate-incoming</c>.
/// </summary>
public sealed partial class QemuBackend : IVmmBackend
{
    public QemuBackend(string executable = "qemu-system-x86_64")
    {
        Executable = executable;
    }

    public string Executable { get; }

    public BackendKind Kind => BackendKind.Qemu;

    public BackendCapabilities Capabilities { get; } = new()
    {
        Accelerators = [Accelerator.Kvm, Accelerator.Tcg],
        RootDisks = true,
        Volumes = true,
        Networks = true,
        AgentTransports = [AgentTransport.Unix, AgentTransport.Tcp],
        SnapshotKinds = SnapshotKinds.Full | SnapshotKinds.Diff, // Diff: a child's written pages, from pagemap (QemuCheckpoint.cs)
    };

    /// <summary>Where accelerator verdicts are cached and probe VMs get their work dirs.</summary>
    public ForkdPaths? Paths { get; init; }

    public HostCheckResult CheckHost()
    {
        var line = FirstVersionLine();
        if (line is null)
        {
            return new("Qemu", HostCheckStatus.Fail, "qemu-system-x86_64 not found", "apt-get install qemu-system-x86 (Debian/Ubuntu), dnf install qemu-system-x86 (Fedora).");
        }

        var m = System.Text.RegularExpressions.Regex.Match(line, @"(\d+)\.(\d+)(\.\d+)?");
        if (!m.Success)
        {
            return new("Qemu", HostCheckStatus.Warn, $"cannot read the version from '{line}'", "Check that qemu-system-x86_64 runs.");
        }

        var version = new Version(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        return version >= new Version(7, 2)
            ? new("Qemu", HostCheckStatus.Pass, $"QEMU {m.Value} ({line.Trim()})")
            : new("Qemu", HostCheckStatus.Fail, $"QEMU {m.Value} is older than 7.2 (microvm snapshots with x-ignore-shared)", "Install QEMU 7.2 or newer.");
    }

    private string? FirstVersionLine() =>
        ProcessRunner.Run(new ProcessSpec(Executable, ["--version"]) { Timeout = TimeSpan.FromSeconds(10) }).FirstLine;

    /// <summary>Only our own snapshots are QEMU's, and they carry everything.</summary>
    public SnapshotMetadata Adopt(string snapshotDirectory, SnapshotMetadata metadata) => metadata;

    public void EnsureAvailable()
    {
        if (Path.IsPathRooted(Executable) ? !File.Exists(Executable) : ExecutableSearch.Find(Executable) is null)
        {
            throw new ForkdException("QemuNotFound", ForkdErrorKind.NotFound, $"QEMU ({Executable}) is not installed or not on PATH", Executable)
            {
                Hint = "Install it (Debian: apt-get install qemu-system-x86); Test-ForkdHost checks it.",
            };
        }
    }

    public Task<AcceleratorChoice> ChooseAcceleratorAsync(AcceleratorPreference preference, VmBootSpec image, CancellationToken cancellationToken) =>
        new QemuAcceleratorChooser(Paths ?? ForkdPaths.FromEnvironment(), this).ChooseAsync(preference, image, cancellationToken);

    /// <summary>QEMU children re-create the parent's drives from the record, so it keeps them, relative to the snapshot dir.</summary>
    public JsonObject SnapshotConfig(JsonObject recorded, IReadOnlyList<DriveSpec> drives)
    {
        ArgumentNullException.ThrowIfNull(recorded);
        var config = recorded.DeepClone().AsObject();
        config["drives"] = QemuDrives.ToJson(drives);
        return config;
    }

    /// <summary>Host TSC rate handed to the guest (TCG boots hang under load without it); 0 leaves it out.</summary>
    public long TscKiloHertz { get; init; }

    public static TimeSpan StartTimeout { get; } = TimeSpan.FromSeconds(30);

    /// <summary>A new parent's machine: without the PIT when the guest is told the TSC rate (children repeat the recorded one).</summary>
    public static string ParentMachine(long tscKiloHertz) => tscKiloHertz > 0 ? QemuMachineConfig.QuietMachine : QemuMachineConfig.DefaultMachine;

    public async Task<IVmHandle> BootAsync(VmBootSpec spec, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var machine = new QemuMachineConfig
        {
            Machine = ParentMachine(TscKiloHertz),
            KernelPath = spec.KernelPath,
            InitramfsPath = spec.InitramfsPath,
            Append = QemuCommandLine.KernelArguments(TscKiloHertz, spec.KernelCommandLine),
            MemoryMiB = spec.MemoryMiB,
            VcpuCount = spec.VcpuCount,
            Accelerator = spec.Accelerator,
            Drives = spec.Drives,
            NicMac = spec.Nic?.GuestMac,
        };
        var tap = spec.Nic is not null && spec.NetworkNamespace is not null ? spec.Nic.TapName : null;
        var args = QemuCommandLine.Build(machine, spec.WorkDirectory, spec.MemoryFilePath, incoming: false, tap);
        var pid = await LaunchAsync(args, spec.WorkDirectory, spec.NetworkNamespace, cancellationToken).ConfigureAwait(false);
        var vm = new QemuVm(pid, spec.WorkDirectory, machine.ToJson());
        try
        {
            await vm.ConnectAsync(cancellationToken).ConfigureAwait(false);
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
        var snapshotDir = Path.GetDirectoryName(spec.Snapshot.MemoryPath) ?? ".";
        var machine = QemuMachineConfig.FromJson(spec.BackendConfig, snapshotDir) with { Accelerator = spec.Accelerator };
        machine = machine with { Drives = QemuDrives.Override(machine.Drives, spec.DriveOverrides) };
        // In a child's network namespace the NIC gets that namespace's tap (same name in every namespace).
        var tap = machine.NicMac is not null && spec.NetworkNamespace is not null ? Host.ChildNetworks.Tap : null;
        var args = QemuCommandLine.Build(machine, spec.WorkDirectory, spec.Snapshot.MemoryPath, incoming: true, tap);
        var clock = Stopwatch.StartNew();
        var pid = await LaunchAsync(args, spec.WorkDirectory, spec.NetworkNamespace, cancellationToken).ConfigureAwait(false);
        var started = clock.Elapsed;
        var vm = new QemuVm(pid, spec.WorkDirectory, spec.BackendConfig);
        try
        {
            await vm.ConnectAsync(cancellationToken).ConfigureAwait(false);
            var connected = clock.Elapsed;
            await vm.LoadStateAsync(spec.Snapshot.VmStatePath, cancellationToken).ConfigureAwait(false);
            var loaded = clock.Elapsed;
            await vm.ResumeAsync(cancellationToken).ConfigureAwait(false);
            vm.StartStages = new ChildStartStages
            {
                VmmStart = started,
                ControlConnect = connected - started,
                StateLoad = loaded - connected,
                Resume = clock.Elapsed - loaded,
            };
            return vm;
        }
        catch
        {
            await vm.KillAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts a daemonizing QEMU; returns the daemon's pid once the launcher exits (sockets then listen).</summary>
    private async Task<int> LaunchAsync(IReadOnlyList<string> args, string workDirectory, string? netns, CancellationToken cancellationToken)
    {
        // ip netns exec enters the namespace and exec()s QEMU; the daemon it forks stays in it.
        var psi = ProcessRunner.StartInfo(new ProcessSpec(Executable, args)
        {
            NetworkNamespace = netns,
            WorkingDirectory = workDirectory,
            StandardInput = "",
        });

        Process launcher;
        try
        {
            launcher = HugePagePolicy.StartWithoutHugePages(() => Process.Start(psi)) ?? throw new InvalidOperationException("no process");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new ForkdException("QemuNotFound", ForkdErrorKind.NotFound,
                $"cannot start {Executable}: {ex.Message}", Executable, ex)
            { Hint = "Install QEMU: apt-get install qemu-system-x86" };
        }

        using (launcher)
        {
            launcher.StandardInput.Close();
            var stderrTask = launcher.StandardError.ReadToEndAsync(CancellationToken.None);
            var stdoutTask = launcher.StandardOutput.ReadToEndAsync(CancellationToken.None);
            var pidFile = Path.Combine(workDirectory, QemuCommandLine.PidFile);
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                deadline.CancelAfter(StartTimeout);
                await launcher.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Launcher still running: kill it and whatever daemon it already forked.
                try
                {
                    launcher.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }

                var stray = ReadPid(pidFile);
                if (stray > 0)
                {
                    await Host.ProcessControl.KillAndWaitAsync(stray, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                }

                cancellationToken.ThrowIfCancellationRequested();
                throw new ForkdException("QemuStartTimeout", ForkdErrorKind.Timeout,
                    $"QEMU did not finish starting within {StartTimeout.TotalSeconds:0} s", workDirectory);
            }

            var stderr = (await stderrTask.ConfigureAwait(false) + await stdoutTask.ConfigureAwait(false)).Trim();
            var pid = ReadPid(pidFile);
            if (launcher.ExitCode != 0 || pid <= 0)
            {
                throw new ForkdException("QemuStartFailed", ForkdErrorKind.Failed,
                    $"QEMU failed to start (exit code {launcher.ExitCode}): {(stderr.Length == 0 ? "no message" : stderr)}", workDirectory);
            }

            return pid;
        }
    }

    internal static int ReadPid(string pidFile)
    {
        try
        {
            return int.TryParse(File.ReadAllText(pidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : 0;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}

/// <summary>A running QEMU, controlled over its one QMP connection.</summary>
internal sealed class QemuVm : IVmHandle
{
    private bool _detached;
    private bool _ended;

    private QmpClient? _qmp;

    public QemuVm(int pid, string workDirectory, JsonObject backendConfig)
    {
        ProcessId = pid;
        WorkDirectory = workDirectory;
        BackendConfig = backendConfig;
        Agent = new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDirectory, QemuCommandLine.AgentSocket));
    }

    public int ProcessId { get; }

    public string WorkDirectory { get; }

    public AgentEndpoint Agent { get; }

    public JsonObject BackendConfig { get; }

    public ChildStartStages StartStages { get; set; } = new();

    private QmpClient Qmp => _qmp ?? throw new InvalidOperationException("QMP not connected");

    public async Task ConnectAsync(CancellationToken cancellationToken)
    {
        _qmp = await QmpClient.ConnectAsync(Path.Combine(WorkDirectory, QemuCommandLine.QmpSocket), TimeSpan.FromSeconds(10), cancellationToken)
            .ConfigureAwait(false);
    }

    /// <summary>The VM's run state (<c>running</c>, <c>paused</c>, <c>inmigrate</c>, <c>internal-error</c>, <c>shutdown</c>…).</summary>
    public async Task<string> QueryStatusAsync(CancellationToken cancellationToken)
    {
        var reply = await Qmp.ExecuteAsync("query-status", null, cancellationToken).ConfigureAwait(false);
        return reply?["status"]?.GetValue<string>() ?? "unknown";
    }

    public Task PauseAsync(CancellationToken cancellationToken) => Qmp.ExecuteAsync("stop", null, cancellationToken);

    public Task ResumeAsync(CancellationToken cancellationToken) => Qmp.ExecuteAsync("cont", null, cancellationToken);

    public async Task SaveAsync(VmSnapshotFiles files, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        await IgnoreSharedAsync(cancellationToken).ConfigureAwait(false);
        // Write to a temp name and rename on completion, so a failed save never leaves a vmstate that looks whole.
        var temp = files.VmStatePath + ".partial";
        await Qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = "exec:cat > " + ShellQuote(temp) }, cancellationToken).ConfigureAwait(false);
        await WaitForMigrationAsync("save", cancellationToken).ConfigureAwait(false);
        File.Move(temp, files.VmStatePath, overwrite: true);
    }

    public async Task LoadStateAsync(string vmStatePath, CancellationToken cancellationToken)
    {
        // With the events capability QEMU announces the end of the load (a MIGRATION event): a hundred children
        // starting at once then wait without a hundred query-migrate loops competing for the CPU.
        await IgnoreSharedAsync(cancellationToken, withEvents: true).ConfigureAwait(false);
        await Qmp.ExecuteAsync("migrate-incoming", new JsonObject { ["uri"] = "exec:cat " + ShellQuote(vmStatePath) }, cancellationToken)
            .ConfigureAwait(false);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(MigrationTimeout);
        JsonObject ended;
        try
        {
            ended = await Qmp.WaitForEventAsync(e => e["event"]?.GetValue<string>() == "MIGRATION"
                && MigrationStatus(e) is "completed" or "failed" or "cancelled", limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ForkdException("RestoreTimeout", ForkdErrorKind.Timeout,
                $"QEMU restore did not complete within {MigrationTimeout.TotalSeconds:0} s", WorkDirectory);
        }

        if (MigrationStatus(ended) != "completed")
        {
            await WaitForMigrationAsync("restore", cancellationToken).ConfigureAwait(false); // query-migrate has the reason
        }
    }

    private static string? MigrationStatus(JsonObject migrationEvent) => migrationEvent["data"]?["status"]?.GetValue<string>();

    private static readonly TimeSpan MigrationTimeout = TimeSpan.FromSeconds(120);

    private Task<System.Text.Json.Nodes.JsonNode?> IgnoreSharedAsync(CancellationToken cancellationToken, bool withEvents = false)
    {
        var capabilities = new JsonArray(new JsonObject { ["capability"] = "x-ignore-shared", ["state"] = true });
        if (withEvents)
        {
            capabilities.Add(new JsonObject { ["capability"] = "events", ["state"] = true });
        }

        return Qmp.ExecuteAsync("migrate-set-capabilities", new JsonObject { ["capabilities"] = capabilities }, cancellationToken);
    }

    private async Task WaitForMigrationAsync(string what, CancellationToken cancellationToken)
    {
        var delay = 2;
        var until = DateTime.UtcNow + MigrationTimeout;
        while (true)
        {
            var info = await Qmp.ExecuteAsync("query-migrate", null, cancellationToken).ConfigureAwait(false);
            var status = info?["status"]?.GetValue<string>();
            switch (status)
            {
                case "completed":
                    return;
                case "failed" or "cancelled":
                    throw new ForkdException(what == "save" ? "SnapshotSaveFailed" : "RestoreFailed", ForkdErrorKind.Failed,
                        $"QEMU {what} {status}: {info?["error-desc"]?.GetValue<string>() ?? "no reason given"}", WorkDirectory);
                default:
                    break;
            }

            if (DateTime.UtcNow > until)
            {
                throw new ForkdException(what == "save" ? "SnapshotSaveTimeout" : "RestoreTimeout", ForkdErrorKind.Timeout,
                    $"QEMU {what} did not complete within {MigrationTimeout.TotalSeconds:0} s (status {status ?? "none"})", WorkDirectory);
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = Math.Min(delay * 2, 50);
        }
    }

    private static string ShellQuote(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public async Task KillAsync()
    {
        if (_ended)
        {
            return; // never signal a pid twice: by now it may belong to someone else
        }

        _ended = true;
        await DisposeQmpAsync().ConfigureAwait(false);
        await Host.ProcessControl.KillAndWaitAsync(ProcessId, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
    }

    public void Detach()
    {
        // Closing QMP does not stop the VM; the daemonized QEMU lives on.
        _detached = true;
        DisposeQmpAsync().AsTask().GetAwaiter().GetResult();
    }

    private async ValueTask DisposeQmpAsync()
    {
        var qmp = Interlocked.Exchange(ref _qmp, null);
        if (qmp is not null)
        {
            await qmp.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Kills the VM unless it was detached, as on every backend: a dropped handle leaves no VMM behind.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_detached)
        {
            await KillAsync().ConfigureAwait(false);
        }

        await DisposeQmpAsync().ConfigureAwait(false);
    }
}
