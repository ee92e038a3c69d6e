using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.PowerShell.Commands;

/// <summary>Flattens a chain of diff snapshots into a standalone snapshot (forkd's snapshot-compact).</summary>
[Cmdlet(VerbsData.Merge, "ForkdSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Merge-ForkdSnapshot.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class MergeForkdSnapshotCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Tag { get; set; } = "";

    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? DestinationTag { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        if (!CheckTag(Tag) || (DestinationTag is not null && !CheckTag(DestinationTag)))
        {
            return;
        }

        var target = DestinationTag is null ? $"'{Tag}' (in place)" : $"'{Tag}' → '{DestinationTag}'{(Force ? " (replacing any existing one)" : "")}";
        if (!ShouldProcess(target, "Merge diff chain into a standalone snapshot"))
        {
            return;
        }

        try
        {
            var createdBy = $"Forkd {MyInvocation.MyCommand.Module?.Version?.ToString() ?? "0.0.0"} (Merge-ForkdSnapshot)";
            var result = RunEngine(call => Task.Run(() => Engine.Chains.Merge(Tag, DestinationTag, Force, createdBy, call.CancellationToken)));
            WriteVerbose($"merged {string.Join(" → ", result.Chain)} into '{result.Snapshot.Tag}'");
            var output = PSObject.AsPSObject(result.Snapshot);
            output.Properties.Add(new PSNoteProperty("Chain", result.Chain.ToArray()));
            WriteObject(output);
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex, Tag);
        }
    }
}
