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
            ListAll(store, null);
            return;
        }

        foreach (var tag in Tag)
        {
            if (WildcardPattern.ContainsWildcardCharacters(tag))
            {
                ListAll(store, tag);
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

    /// <summary>Every matching snapshot; each damaged one is a non-terminating error and the others still list.</summary>
    private void ListAll(SnapshotStore store, string? pattern)
    {
        var problems = new List<ForkdException>();
        WriteObject(store.List(pattern, problems), enumerateCollection: true);
        foreach (var problem in problems)
        {
            WriteForkdError(problem, problem.Target);
        }
    }
}
