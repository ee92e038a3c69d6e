using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.PowerShell.Commands;

/// <summary>Deletes snapshots from the local store.</summary>
[Cmdlet(VerbsCommon.Remove, "ForkdSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, HelpUri = HelpLinks.Base + "Remove-ForkdSnapshot.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class RemoveForkdSnapshotCommand : ForkdCmdlet
{
    /// <summary>Exact tags to delete (no wildcards: deletion is never by pattern).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string[] Tag { get; set; } = [];

    /// <summary>Writes each removed snapshot (as it was before removal).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var store = Store;
        foreach (var tag in Tag)
        {
            if (!CheckTag(tag))
            {
                continue;
            }

            try
            {
                var snapshot = store.Get(tag);
                // Ask only once the remove could happen: a snapshot with running children is refused first.
                store.ThrowIfChildrenRun(tag, "remove it");
                if (ShouldProcess($"{tag} ({snapshot.Path})", "Remove snapshot"))
                {
                    store.Remove(tag);
                    WriteVerbose($"removed snapshot '{tag}' at {snapshot.Path}");
                    if (PassThru)
                    {
                        WriteObject(snapshot);
                    }
                }
            }
            catch (ForkdException ex)
            {
                WriteForkdError(ex, tag);
            }
        }
    }
}
