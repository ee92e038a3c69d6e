using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Guest;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// Picks KVM only where a guest provably boots under it. A VM that merely gets created proves nothing
/// (a PVM-backed <c>/dev/kvm</c> creates VMs but cannot run a stock kernel), so the probe boots the real
/// image under KVM and waits for its agent. The verdict is cached per kernel and host boot.
/// </summary>
internal sealed class QemuAcceleratorChooser
{
    private readonly ForkdPaths _paths;
    private readonly QemuBackend _backend;

    public QemuAcceleratorChooser(ForkdPaths paths, QemuBackend backend)
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

        if (KvmVerdicts.Read(_paths.CacheDirectory, image.KernelPath) is { } cached)
        {
            return Choice(cached) with { FromCache = true };
        }

        var verdict = await ProbeAsync(image, cancellationToken).ConfigureAwait(false);
        KvmVerdicts.Write(_paths.CacheDirectory, image.KernelPath, verdict);
        return Choice(verdict);
    }

    private static AcceleratorChoice Choice(KvmVerdict verdict) => verdict.Booted
        ? new(Accelerator.Kvm, verdict.Detail)
        : new(Accelerator.Tcg, $"{verdict.Detail}; using TCG");

    private async Task<KvmVerdict> ProbeAsync(VmBootSpec image, CancellationToken cancellationToken)
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
            return new(true, "KVM: a probe guest booted and its agent answered");
        }
        catch (ForkdException ex)
        {
            var firstLine = ex.Message.Split('\n')[0].Trim();
            return new(false, $"KVM cannot boot this guest{pvm}: {firstLine}");
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
}
