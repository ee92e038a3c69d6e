using System.Security.Cryptography;
using System.Text.Json;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.Core.Engine;

/// <summary>What the user asked for: <c>Auto</c> lets a booting guest decide.</summary>
public enum AcceleratorPreference
{
    Auto,
    Kvm,
    Tcg,
}

/// <summary>The accelerator chosen and why, shown to the user and recorded in the snapshot.</summary>
public sealed record AcceleratorChoice(Accelerator Accelerator, string Reason, bool FromCache = false);

/// <summary>
/// Picks KVM only where a guest provably boots under it. A VM that merely gets created proves nothing
/// (a PVM-backed <c>/dev/kvm</c> creates VMs but cannot run a stock kernel), so the probe boots the real
/// image under KVM and waits for its agent. The verdict is cached per kernel and host boot.
/// </summary>
public sealed class AcceleratorChooser
{
    private readonly ForkdPaths _paths;
    private readonly QemuBackend _backend;

    public AcceleratorChooser(ForkdPaths paths, QemuBackend backend)
    {
        _paths = paths;
        _backend = backend;
    }

    public static TimeSpan ProbeTimeout { get; set; } = TimeSpan.FromSeconds(20);

    public async Task<AcceleratorChoice> ChooseAsync(AcceleratorPreference preference, VmBootSpec image, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(image);
        switch (preference)
        {
            case AcceleratorPreference.Tcg:
                return new(Accelerator.Tcg, "TCG requested");
            case AcceleratorPreference.Kvm:
                if (!File.Exists("/dev/kvm"))
                {
                    throw new ForkdException("KvmUnavailable", ForkdErrorKind.NotSupported, "KVM requested but /dev/kvm does not exist", "/dev/kvm")
                    { Hint = "Use -Accelerator Auto or Tcg." };
                }

                return new(Accelerator.Kvm, "KVM requested");
            default:
                break;
        }

        if (!File.Exists("/dev/kvm"))
        {
            return new(Accelerator.Tcg, "no /dev/kvm on this host: using TCG");
        }

        var cacheFile = Path.Combine(_paths.CacheDirectory, "accelerator", $"{FileHash(image.KernelPath)}-{BootId()}.json");
        if (File.Exists(cacheFile))
        {
            try
            {
                var cached = JsonSerializer.Deserialize<AcceleratorChoice>(File.ReadAllText(cacheFile));
                if (cached is not null)
                {
                    return cached with { FromCache = true };
                }
            }
            catch (JsonException)
            {
            }
        }

        var choice = await ProbeAsync(image, cancellationToken).ConfigureAwait(false);
        Directory.CreateDirectory(Path.GetDirectoryName(cacheFile)!);
        File.WriteAllText(cacheFile, JsonSerializer.Serialize(choice));
        return choice;
    }

    private async Task<AcceleratorChoice> ProbeAsync(VmBootSpec image, CancellationToken cancellationToken)
    {
        var pvm = Directory.Exists("/sys/module/kvm_pvm") ? " (/dev/kvm is served by kvm_pvm, which runs only PVM-built guest kernels)" : "";
        var dir = WorkDirectories.Create(_paths, WorkDirKind.Probe, "kvm");
        IVmHandle? vm = null;
        try
        {
            vm = await _backend.BootAsync(image with
            {
                Name = "kvm-probe",
                WorkDirectory = dir,
                MemoryFilePath = Path.Combine(dir, "memory.bin"),
                Accelerator = Accelerator.Kvm,
                VcpuCount = 1,
            }, cancellationToken).ConfigureAwait(false);
            var pid = vm.ProcessId;
            await using var agent = await AgentWait.UntilReadyAsync(vm.Agent, ProbeTimeout, () => ProcessControl.IsAlive(pid), cancellationToken)
                .ConfigureAwait(false);
            return new(Accelerator.Kvm, "KVM: a probe guest booted and its agent answered");
        }
        catch (ForkdException ex)
        {
            var firstLine = ex.Message.Split('\n')[0].Trim();
            return new(Accelerator.Tcg, $"KVM cannot boot this guest{pvm}: {firstLine}; using TCG");
        }
        finally
        {
            if (vm is not null)
            {
                await vm.KillAsync().ConfigureAwait(false);
            }

            SafeDelete.Delete(dir);
        }
    }

    private static string FileHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..16];
    }

    private static string BootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
