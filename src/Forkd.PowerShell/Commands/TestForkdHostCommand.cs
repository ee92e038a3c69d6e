using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;

namespace Forkd.PowerShell.Commands;

/// <summary>Checks what forkd needs from this host; one object per check with status, what was seen and how to fix it.</summary>
[Cmdlet(VerbsDiagnostic.Test, "ForkdHost")]
[OutputType(typeof(HostCheckResult))]
public sealed class TestForkdHostCommand : ForkdCmdlet
{
    /// <summary>Only these checks.</summary>
    [Parameter(Position = 0)]
    [ValidateSet("Kvm", "Qemu", "Firecracker", "Cgroups", "NetworkNamespaces", "VhostVsock", "Ksm", "HugePages", "Memory", "Disk", IgnoreCase = true)]
    public string[]? Name { get; set; }

    /// <summary>Guest kernel (ELF vmlinux) for the KVM boot probe; default: the newest cached guest image's.</summary>
    [Parameter]
    public string? KernelPath { get; set; }

    /// <summary>Re-run the KVM boot probe instead of using its cached result.</summary>
    [Parameter]
    public SwitchParameter Refresh { get; set; }

    protected override void EndProcessing()
    {
        var checks = new HostChecks(Paths, Engine.Backends)
        {
            ProbeKernel = KernelPath is null ? null : GetUnresolvedProviderPathFromPSPath(KernelPath),
            RefreshProbe = Refresh,
        };
        if (Name is null || Name.Contains("Kvm", StringComparer.OrdinalIgnoreCase))
        {
            WriteProgress(new ProgressRecord(1, "Test-ForkdHost", "Probing KVM with a guest kernel boot (cached after the first run)"));
        }

        IReadOnlyList<HostCheckResult> results;
        try
        {
            results = RunEngine(call => checks.RunAsync(Name, call.CancellationToken));
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
            return;
        }

        WriteProgress(new ProgressRecord(1, "Test-ForkdHost", "Done") { RecordType = ProgressRecordType.Completed });
        foreach (var r in results)
        {
            WriteObject(r);
        }
    }
}
