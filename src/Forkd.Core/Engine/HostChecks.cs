using System.Globalization;
using System.Text.RegularExpressions;
using Forkd.Core.Store;
using Forkd.Core.Host;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>
/// What <c>Test-ForkdHost</c> checks: everything forkd needs from the host, each with what was seen
/// and how to fix it. Read-only, except the KVM boot probe's cached answer under the data dir.
/// </summary>
public sealed partial class HostChecks
{
    private readonly ForkdPaths _paths;
    private readonly string _sys;
    private readonly string _proc;

    private readonly BackendCatalog _backends;

    public HostChecks(ForkdPaths paths, BackendCatalog? backends = null, string sysRoot = "/sys", string procRoot = "/proc")
    {
        _paths = paths;
        _backends = backends ?? BackendCatalog.CreateDefault(paths);
        _sys = sysRoot;
        _proc = procRoot;
    }

    /// <summary>The guest kernel for the KVM boot probe; null looks for a cached guest image's vmlinux.</summary>
    public string? ProbeKernel { get; init; }

    /// <summary>Re-run the KVM boot probe instead of reading its cached answer.</summary>
    public bool RefreshProbe { get; init; }

    public static readonly IReadOnlyList<string> Names =
        ["Kvm", "Qemu", "Firecracker", "Cgroups", "NetworkNamespaces", "VhostVsock", "Ksm", "HugePages", "Memory", "Disk"];

    public async Task<IReadOnlyList<HostCheckResult>> RunAsync(IEnumerable<string>? only, CancellationToken cancellationToken)
    {
        var wanted = only?.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var results = new List<HostCheckResult>();
        foreach (var name in Names.Where(n => wanted is null || wanted.Contains(n)))
        {
            cancellationToken.ThrowIfCancellationRequested();
            results.Add(name switch
            {
                "Kvm" => await KvmAsync(cancellationToken).ConfigureAwait(false),
                "Qemu" => _backends.Get(BackendKind.Qemu).CheckHost(),
                "Firecracker" => _backends.Get(BackendKind.Firecracker).CheckHost(),
                "Cgroups" => Cgroups(),
                "NetworkNamespaces" => NetworkNamespaces(),
                "VhostVsock" => VhostVsock(),
                "Ksm" => Ksm(),
                "HugePages" => HugePages(),
                "Memory" => Memory(),
                _ => Disk(),
            });
        }

        return results;
    }

    public bool IsPvm => Directory.Exists(Path.Combine(_sys, "module", "kvm_pvm"));

    private const string PvmExplanation =
        "/dev/kvm is served by kvm_pvm (PVM: shadow-paging virtualization without VMX/SVM, usual inside cloud VMs with nested_pvm=1). " +
        "PVM runs only guest kernels built as PVM guests; stock distribution kernels such as Debian's stop with a KVM internal error (emulation failure) or crawl";

    public async Task<HostCheckResult> KvmAsync(CancellationToken cancellationToken)
    {
        var (version, detail) = KvmProbe.ApiVersion();
        if (version is null)
        {
            return new("Kvm", HostCheckStatus.Fail, detail + "; forkd runs guests with QEMU's software CPU (TCG), about 10x slower to boot, and Firecracker cannot run",
                "Enable virtualization (VT-x/AMD-V, or nested virtualization on a cloud VM), load kvm_intel or kvm_amd, and make /dev/kvm read-writable for this user (group kvm).");
        }

        var kernel = ProbeKernel ?? FindGuestKernel();
        if (kernel is null)
        {
            return IsPvm
                ? new("Kvm", HostCheckStatus.Fail, $"{detail}; {PvmExplanation}. Boot probe not run: no guest kernel cached yet", PvmFix)
                : new("Kvm", HostCheckStatus.Warn, $"{detail}; whether KVM can boot a guest is not probed yet: no guest kernel cached",
                    "Build a guest image first (it brings the kernel), then run Test-ForkdHost again.");
        }

        KvmProbe.Result boot;
        try
        {
            boot = await KvmProbe.BootAsync(kernel, _paths.CacheDirectory, RefreshProbe, cancellationToken).ConfigureAwait(false);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new("Kvm", HostCheckStatus.Warn, $"{detail}; boot probe not run: qemu-system-x86_64 is missing", "Install qemu-system-x86 (see the Qemu check).");
        }

        if (boot.Booted)
        {
            return new("Kvm", HostCheckStatus.Pass, $"{detail}; {boot.Detail}");
        }

        return IsPvm
            ? new("Kvm", HostCheckStatus.Fail, $"{detail}; {boot.Detail}. {PvmExplanation}", PvmFix)
            : new("Kvm", HostCheckStatus.Fail, $"{detail}; {boot.Detail}",
                "KVM opens but cannot run this guest: check nested virtualization on the host (kvm_intel nested=1), or use -Accelerator Tcg.");
    }

    private const string PvmFix =
        "Nothing to fix in forkd: it uses QEMU with TCG here (New-ForkdSnapshot picks it). For KVM speed and the Firecracker backend run on bare metal or a VM with nested VMX/SVM.";

    private string? FindGuestKernel()
    {
        var images = Path.Combine(_paths.CacheDirectory, "images");
        if (!Directory.Exists(images))
        {
            return null;
        }

        return Directory.EnumerateFiles(images, "vmlinux", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/.", StringComparison.Ordinal))
            .OrderByDescending(File.GetLastWriteTimeUtc)
            .FirstOrDefault();
    }

    public HostCheckResult Cgroups()
    {
        var root = Path.Combine(_sys, "fs", "cgroup");
        var v2Controllers = Path.Combine(root, "cgroup.controllers");
        if (File.Exists(v2Controllers))
        {
            var controllers = File.ReadAllText(v2Controllers).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return controllers.Contains("memory")
                ? new("Cgroups", HostCheckStatus.Pass, $"cgroup v2 (unified) at {root}; memory controller available")
                : new("Cgroups", HostCheckStatus.Fail, $"cgroup v2 at {root} without the memory controller ({string.Join(' ', controllers)})",
                    "Enable the memory controller (kernel cgroup_enable=memory) so -MemoryLimitMiB can cap children.");
        }

        var v1Memory = Path.Combine(root, "memory", "memory.limit_in_bytes");
        var unified = Directory.Exists(Path.Combine(root, "unified")) ? "; v2 tree mounted at unified/ (hybrid)" : "";
        return File.Exists(v1Memory)
            ? new("Cgroups", HostCheckStatus.Pass, $"cgroup v1{unified}; memory controller at {Path.Combine(root, "memory")}")
            : new("Cgroups", HostCheckStatus.Fail, $"no cgroup v2 and no v1 memory controller under {root}",
                "Mount cgroup v2 (systemd.unified_cgroup_hierarchy=1) or the v1 memory controller, so child memory limits work.");
    }

    /// <summary>Makes a tap device inside a throwaway namespace (gone when the probe exits): proves netns + tun work.</summary>
    public static HostCheckResult NetworkNamespaces()
    {
        var tun = "/dev/net/tun";
        if (FirstLine("ip", "-V") is null)
        {
            return new("NetworkNamespaces", HostCheckStatus.Fail, "the 'ip' command (iproute2) is missing", "apt-get install iproute2.");
        }

        if (!File.Exists(tun))
        {
            return new("NetworkNamespaces", HostCheckStatus.Fail, $"{tun} is missing: no tap devices", "modprobe tun.");
        }

        var (code, output) = Run("unshare", "--net", "ip", "tuntap", "add", "dev", "forkd-probe0", "mode", "tap");
        var nft = FirstLine("nft", "--version") is null ? "; 'nft' missing (no NAT for child egress: apt-get install nftables)" : "";
        if (code != 0)
        {
            return new("NetworkNamespaces", HostCheckStatus.Warn, $"cannot create a tap in a new network namespace: {output.Trim()}{nft}",
                "Per-child networks (-Network) need root or CAP_NET_ADMIN + CAP_SYS_ADMIN.");
        }

        return nft.Length == 0
            ? new("NetworkNamespaces", HostCheckStatus.Pass, "a new network namespace with a tap device works; nft present for NAT")
            : new("NetworkNamespaces", HostCheckStatus.Warn, "a new network namespace with a tap device works" + nft, "apt-get install nftables.");
    }

    public static HostCheckResult VhostVsock() => File.Exists("/dev/vhost-vsock")
        ? new("VhostVsock", HostCheckStatus.Pass, "/dev/vhost-vsock present")
        : new("VhostVsock", HostCheckStatus.Warn, "/dev/vhost-vsock is missing: QEMU guests cannot use vsock (forkd talks to QEMU guests over virtio-serial, and Firecracker's vsock needs no vhost, so forkd works without it)",
            "Optional: modprobe vhost_vsock.");

    public HostCheckResult Ksm()
    {
        var run = ReadTrim(Path.Combine(_sys, "kernel", "mm", "ksm", "run"));
        return run switch
        {
            null => new("Ksm", HostCheckStatus.Warn, "KSM not available in this kernel", "Optional: a kernel with CONFIG_KSM merges identical pages that children wrote separately."),
            "1" => new("Ksm", HostCheckStatus.Pass, "KSM running (/sys/kernel/mm/ksm/run = 1)"),
            _ => new("Ksm", HostCheckStatus.Warn, $"KSM off (/sys/kernel/mm/ksm/run = {run}): pages children change are not merged again; untouched pages are shared anyway (copy-on-write)",
                "Optional: echo 1 > /sys/kernel/mm/ksm/run"),
        };
    }

    public HostCheckResult HugePages()
    {
        var info = MemInfo();
        var total = info.GetValueOrDefault("HugePages_Total");
        var sizeKb = info.GetValueOrDefault("Hugepagesize", 2048);
        var thp = ReadTrim(Path.Combine(_sys, "kernel", "mm", "transparent_hugepage", "enabled")) ?? "unknown";
        var thpMode = thp.Split(' ').FirstOrDefault(w => w.StartsWith('['))?.Trim('[', ']') ?? thp;
        var observed = $"{total} hugetlb pages of {sizeKb / 1024} MiB reserved; transparent huge pages: {thpMode}";
        return total > 0
            ? new("HugePages", HostCheckStatus.Warn, observed + $" — {total * sizeKb / 1024} MiB set aside that forkd's VMs do not use",
                "Unless something else needs them: echo 0 > /proc/sys/vm/nr_hugepages")
            : new("HugePages", HostCheckStatus.Pass, observed);
    }

    public HostCheckResult Memory()
    {
        var availableMiB = MemInfo().GetValueOrDefault("MemAvailable") / 1024;
        var observed = $"{availableMiB} MiB available";
        return availableMiB switch
        {
            < 512 => new("Memory", HostCheckStatus.Fail, observed + " — not enough for one 256 MiB parent and its children", "Free memory or use a larger host."),
            < 2048 => new("Memory", HostCheckStatus.Warn, observed + " — a parent plus a few children at most", "Free memory for more children."),
            _ => new("Memory", HostCheckStatus.Pass, observed),
        };
    }

    public HostCheckResult Disk()
    {
        var dir = _paths.DataDirectory;
        while (!Directory.Exists(dir) && Path.GetDirectoryName(dir) is { } parent)
        {
            dir = parent;
        }

        var freeMiB = new DriveInfo(dir).AvailableFreeSpace / (1024 * 1024);
        var observed = $"{freeMiB} MiB free under {_paths.DataDirectory} (checked at {dir})";
        return freeMiB switch
        {
            < 1024 => new("Disk", HostCheckStatus.Fail, observed + " — a snapshot holds the guest's whole memory file", "Free space or set FORKD_DATA_DIR to a larger filesystem."),
            < 5120 => new("Disk", HostCheckStatus.Warn, observed + " — room for a few snapshots only", "Free space or set FORKD_DATA_DIR to a larger filesystem."),
            _ => new("Disk", HostCheckStatus.Pass, observed),
        };
    }

    private Dictionary<string, long> MemInfo()
    {
        var values = new Dictionary<string, long>();
        foreach (var line in File.ReadLines(Path.Combine(_proc, "meminfo")))
        {
            var parts = line.Split(':', 2);
            if (parts.Length == 2 && long.TryParse(parts[1].Trim().Split(' ')[0], CultureInfo.InvariantCulture, out var v))
            {
                values[parts[0]] = v;
            }
        }

        return values;
    }

    private static string? ReadTrim(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string? FirstLine(string exe, params string[] args) =>
        ProcessRunner.Run(new ProcessSpec(exe, args) { Timeout = TimeSpan.FromSeconds(10) }).FirstLine;

    private static (int Code, string Output) Run(string exe, params string[] args)
    {
        var outcome = ProcessRunner.Run(new ProcessSpec(exe, args) { Timeout = TimeSpan.FromSeconds(10) });
        return (outcome.ExitCode, outcome.TimedOut ? "timed out" : outcome.Output);
    }

}
