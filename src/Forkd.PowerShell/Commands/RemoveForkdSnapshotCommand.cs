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

    /// <summary>Also remove the diff snapshots that depend on the tag (named in the confirmation).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

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
                // A damaged snapshot (unreadable or invalid metadata) can always be removed: only its directory is needed.
                var snapshot = store.GetForRemoval(tag);
                // Ask only once the remove could happen: a snapshot with running children is refused first.
                store.ThrowIfChildrenRun(tag, "remove it");
                var dependents = Force ? store.Dependents(tag) : [];
                var what = dependents.Count == 0 ? "Remove snapshot" : $"Remove snapshot and the {dependents.Count} diff snapshot(s) that depend on it: {string.Join(", ", dependents)}";
                if (ShouldProcess($"{tag} ({snapshot.Path})", what))
                {
                    foreach (var removed in Force ? store.RemoveWithDependents(tag) : Remove(store, tag))
                    {
                        WriteVerbose($"removed snapshot '{removed}'");
                    }

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

    private static string[] Remove(SnapshotStore store, string tag)
    {
        store.Remove(tag); // refuses (SnapshotHasDependents) while diff snapshots need it
        return [tag];
    }
}
