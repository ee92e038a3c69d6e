using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Host;

namespace Forkd.PowerShell.Commands;

/// <summary>Removes forkd's child network namespaces, host veths, bridge and NAT table; only exact forkd names.</summary>
[Cmdlet(VerbsCommon.Remove, "ForkdNetwork", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Remove-ForkdNetwork.md")]
[OutputType(typeof(ChildNetworkItem))]
public sealed class RemoveForkdNetworkCommand : ForkdCmdlet
{
    /// <summary>Only these children's namespaces (and their veths); the bridge and NAT table stay. All when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, ChildNetworks.MaxIndex)]
    [ArgumentCompleter(typeof(NetworkIndexCompleter))]
    public int[]? Index { get; set; }

    /// <summary>Writes each removed item.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly List<int> _indexes = [];

    protected override void ProcessRecord()
    {
        if (Index is not null)
        {
            _indexes.AddRange(Index);
        }
    }

    protected override void EndProcessing()
    {
        IReadOnlyList<ChildNetworkItem> items;
        try
        {
            items = ChildNetworks.Find();
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
            return;
        }

        if (_indexes.Count > 0)
        {
            var names = _indexes.SelectMany(i => new[] { ChildNetworks.NamespaceName(i), ChildNetworks.HostVethName(i) }).ToHashSet();
            items = [.. items.Where(i => names.Contains(i.Name))];
        }

        foreach (var item in items)
        {
            if (StopToken.IsCancellationRequested)
            {
                return;
            }

            if (!ShouldProcess(item.Name, $"Remove {item.Kind}"))
            {
                continue;
            }

            try
            {
                ChildNetworks.Remove(item);
                if (PassThru)
                {
                    WriteObject(item);
                }
            }
            catch (ForkdException ex)
            {
                WriteForkdError(ex, item.Name);
            }
        }
    }
}
