using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.PowerShell.Commands;

/// <summary>Lists snapshots in the local store (forkd's <c>images</c>).</summary>
[Cmdlet(VerbsCommon.Get, "ForkdSnapshot", HelpUri = HelpLinks.Base + "Get-ForkdSnapshot.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class GetForkdSnapshotCommand : ForkdCmdlet
{
    /// <summary>Tags or wildcard patterns; all snapshots when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string[]? Tag { get; set; }

    protected override void ProcessRecord()
    {
        var store = Store;
        if (Tag is null)
        {
            WriteObject(store.List(), enumerateCollection: true);
            return;
        }

        foreach (var tag in Tag)
        {
            if (WildcardPattern.ContainsWildcardCharacters(tag))
            {
                WriteObject(store.List(tag), enumerateCollection: true);
                continue;
            }

            if (!CheckTag(tag))
            {
                continue;
            }

            try
            {
                WriteObject(store.Get(tag));
            }
            catch (ForkdException ex)
            {
                WriteForkdError(ex, tag);
            }
        }
    }
}
