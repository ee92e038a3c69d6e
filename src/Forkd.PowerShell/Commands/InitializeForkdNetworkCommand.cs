using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Host;

namespace Forkd.PowerShell.Commands;

/// <summary>Creates the per-child network namespaces <c>forkd-child-1..N</c> (tap, veth into forkd-br0, NAT). Idempotent.</summary>
[Cmdlet(VerbsData.Initialize, "ForkdNetwork", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Initialize-ForkdNetwork.md")]
[OutputType(typeof(ChildNetwork))]
public sealed class InitializeForkdNetworkCommand : ForkdCmdlet
{
    /// <summary>How many child namespaces to make (1..Count).</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateRange(1, ChildNetworks.MaxIndex)]
    public int Count { get; set; }

    protected override void EndProcessing()
    {
        const string activity = "Initialize-ForkdNetwork";
        try
        {
            if (ShouldProcess($"{ChildNetworks.Bridge} ({ChildNetworks.BridgeAddress}/16), nftables table 'ip {ChildNetworks.HostTable}', IPv4 forwarding",
                    "Create host bridge and egress NAT"))
            {
                ChildNetworks.EnsureHost();
            }

            for (var i = 1; i <= Count; i++)
            {
                if (StopToken.IsCancellationRequested)
                {
                    return;
                }

                var name = ChildNetworks.NamespaceName(i);
                WriteProgress(new ProgressRecord(1, activity, $"{name} ({i} of {Count})") { PercentComplete = (i - 1) * 100 / Count });
                if (ShouldProcess(name, $"Create network namespace with tap {ChildNetworks.Tap}, veth {ChildNetworks.HostVethName(i)} and NAT to {ChildNetworks.ChildAddress(i)}"))
                {
                    WriteObject(ChildNetworks.EnsureChild(i));
                }
            }
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
        }
        finally
        {
            WriteProgress(new ProgressRecord(1, activity, "Done") { RecordType = ProgressRecordType.Completed });
        }
    }
}
