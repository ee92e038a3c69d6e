using System.Globalization;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// The machine a QEMU parent runs and its children repeat exactly (same devices, same kernel, same
/// memory size), as recorded in <c>snapshot.json</c>'s <c>backend_config</c>.
/// </summary>
public sealed record QemuMachineConfig
{
    public const string AgentPortName = "forkd.agent";

    public const string DefaultMachine = "microvm,x-option-roms=off,rtc=off,isa-serial=on";

    /// <summary>
    /// Without a PIT: QEMU's PIT model ticks its square wave 36 times a second in every VMM, guest or no guest
    /// listening (most of an idle child's host CPU). The guest only needs it to calibrate its TSC, which
    /// <c>tsc_early_khz</c> does instead, so it stays when the host's TSC rate is unknown.
    /// </summary>
    public const string QuietMachine = DefaultMachine + ",pit=off";

    public string Machine { get; init; } = DefaultMachine;

    public required string KernelPath { get; init; }

    public string? InitramfsPath { get; init; }

    /// <summary>The full kernel command line, backend arguments included.</summary>
    public required string Append { get; init; }

    public int MemoryMiB { get; init; } = 256;

    public int VcpuCount { get; init; } = 1;

    public Accelerator Accelerator { get; init; } = Accelerator.Tcg;

    public string AgentPort { get; init; } = AgentPortName;

    /// <summary>Block devices in guest order (vda, vdb, …): a shared read-only root disk first, then volumes.</summary>
    public IReadOnlyList<DriveSpec> Drives { get; init; } = [];
    /// <summary>The guest NIC's MAC, or null for a guest without network. Children repeat it (same MAC, same IP).</summary>
    public string? NicMac { get; init; }

    public string Cpu => Accelerator == Accelerator.Kvm ? "host" : "max";

    public JsonObject ToJson() => new()
    {
        ["machine"] = Machine,
        ["kernel"] = KernelPath,
        ["initrd"] = InitramfsPath,
        ["append"] = Append,
        ["memory_mib"] = MemoryMiB,
        ["vcpu_count"] = VcpuCount,
        ["accelerator"] = VmmNames.Of(Accelerator),
        ["agent_port"] = AgentPort,
        ["drives"] = QemuDrives.ToJson(Drives),
        ["nic_mac"] = NicMac,
    };

    /// <summary>Reads a recorded config; relative kernel/initrd names resolve against <paramref name="baseDirectory"/> (the snapshot dir).</summary>
    public static QemuMachineConfig FromJson(JsonObject json, string baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(json);
        string Need(string key) => json[key]?.GetValue<string>()
            ?? throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData, $"backend_config has no '{key}'", key);
        string? Resolve(string? p) => p is null ? null : Path.IsPathRooted(p) ? p : Path.Combine(baseDirectory, p);

        return new QemuMachineConfig
        {
            Machine = Need("machine"),
            KernelPath = Resolve(Need("kernel"))!,
            InitramfsPath = Resolve(json["initrd"]?.GetValue<string>()),
            Append = Need("append"),
            MemoryMiB = json["memory_mib"]?.GetValue<int>() ?? 256,
            VcpuCount = json["vcpu_count"]?.GetValue<int>() ?? 1,
            Accelerator = VmmNames.ParseAccelerator(json["accelerator"]?.GetValue<string>()) ?? Accelerator.Tcg,
            AgentPort = json["agent_port"]?.GetValue<string>() ?? AgentPortName,
            Drives = QemuDrives.FromJson(json["drives"] as JsonArray, baseDirectory),
            NicMac = json["nic_mac"]?.GetValue<string>(),
        };
    }
}

/// <summary>Builds QEMU argument lists. Pure, so the exact recipe is unit-tested.</summary>
public static class QemuCommandLine
{
    /// <summary>
    /// Each timer an idle guest arms costs translated code under TCG, paid by every idle child: the soft-lockup
    /// watchdog (an hrtimer every 4 s) and proactive compaction (kcompactd every 500 ms) are off, and so is
    /// pressure-stall accounting (work on every context switch and a 2 s averaging timer). A sandbox's behaviour
    /// depends on none of them. See bench/results/idle-causes.md.
    /// </summary>
    public const string IdleKernelArguments = "nowatchdog sysctl.vm.compaction_proactiveness=0 psi=0";

    public const string QmpSocket = "qmp.sock";
    public const string AgentSocket = "agent.sock";
    public const string SerialLog = "serial.log";
    public const string PidFile = "qemu.pid";

    /// <summary>
    /// Arguments for a parent (<paramref name="incoming"/> false: RAM file mapped shared, so a save leaves guest RAM
    /// in it) or a child (true: the same file mapped private = copy-on-write, device state loaded later by QMP).
    /// </summary>
    /// <param name="tap">Tap device (in the VMM's network namespace) backing the NIC; null gives a NIC that reaches nothing.</param>
    public static IReadOnlyList<string> Build(QemuMachineConfig machine, string workDirectory, string memoryFile, bool incoming, string? tap = null)
    {
        ArgumentNullException.ThrowIfNull(machine);
        var mem = machine.MemoryMiB.ToString(CultureInfo.InvariantCulture);
        var args = new List<string>
        {
            "-name", Path.GetFileName(workDirectory),
            "-M", machine.Machine,
            "-accel", machine.Accelerator == Accelerator.Kvm ? "kvm" : "tcg",
            "-cpu", machine.Cpu,
            "-smp", machine.VcpuCount.ToString(CultureInfo.InvariantCulture),
            "-m", mem + "M",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", // with panic=-1 a crashed guest ends its QEMU instead of rebooting in a loop
            // share=off is MAP_PRIVATE: the child's writes stay its own, the file never changes. (readonly=on hangs the guest.)
            "-object", $"memory-backend-file,id=mem,size={mem}M,mem-path={memoryFile},share={(incoming ? "off" : "on")}",
            "-machine", "memory-backend=mem",
            "-kernel", machine.KernelPath,
        };
        if (machine.InitramfsPath is not null)
        {
            args.AddRange(["-initrd", machine.InitramfsPath]);
        }

        args.AddRange(["-append", machine.Append]);
        args.AddRange(QemuDrives.Arguments(machine.Drives));
        args.AddRange(
        [
            "-serial", "file:" + Path.Combine(workDirectory, SerialLog),
            "-device", "virtio-serial-device",
            "-chardev", $"socket,id=agent,path={Path.Combine(workDirectory, AgentSocket)},server=on,wait=off",
            "-device", $"virtserialport,chardev=agent,name={machine.AgentPort}",
            "-qmp", $"unix:{Path.Combine(workDirectory, QmpSocket)},server=on,wait=off",
            "-pidfile", Path.Combine(workDirectory, PidFile),
            // Daemonized QEMU calls setsid and outlives pwsh; it exits the launcher only once its sockets listen.
            "-daemonize",
        ]);
        if (machine.NicMac is not null)
        {
            // Migration carries the virtio-net device, not its backend: a parent without a tap and its
            // children on per-namespace taps load the same state. Without a tap the card sits alone on a
            // hub port and reaches nothing ("user" would not do: slirp adds its own section to the vmstate).
            var backend = tap is null
                ? "hubport,id=net0,hubid=0"
                : $"tap,id=net0,ifname={tap},script=no,downscript=no";
            args.AddRange(["-netdev", backend, "-device", $"virtio-net-device,netdev=net0,mac={machine.NicMac}"]);
        }

        if (incoming)
        {
            args.AddRange(["-incoming", "defer"]);
        }

        return args;
    }

    /// <summary>
    /// Our kernel arguments first (console, no reboot loop, a TSC that TCG cannot calibrate under load, and no
    /// periodic wake-ups an idle sandbox does not need), then the image's.
    /// </summary>
    public static string KernelArguments(long hostTscKiloHertz, string imageArguments)
    {
        var ours = "console=ttyS0 panic=-1 quiet " + IdleKernelArguments;
        if (hostTscKiloHertz > 0)
        {
            ours += string.Create(CultureInfo.InvariantCulture, $" tsc_early_khz={hostTscKiloHertz} tsc=reliable");
        }

        return string.IsNullOrWhiteSpace(imageArguments) ? ours : ours + " " + imageArguments.Trim();
    }
}
