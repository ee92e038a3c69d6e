using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Lists forked children from the registry, in any session; a child whose VMM died (or whose record cannot be
/// proved against the process table) shows as Exited, and a VMM of ours that no record knows as Orphaned.
/// </summary>
[Cmdlet(VerbsCommon.Get, "ForkdChild", DefaultParameterSetName = "Tag", HelpUri = HelpLinks.Base + "Get-ForkdChild.md")]
[OutputType(typeof(ForkdChild))]
public sealed class GetForkdChildCommand : ForkdCmdlet
{
    [Parameter(Position = 0, ParameterSetName = "Tag", ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string[]? Tag { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Id", ValueFromPipelineByPropertyName = true)]
    [Alias("ChildId")]
    [ChildIdTransformation]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ChildIdCompleter))]
    public string[] Id { get; set; } = [];

    protected override void ProcessRecord()
    {
        var registry = Engine.Children;
        if (ParameterSetName == "Id")
        {
            WriteObject(ChildLookup.Resolve(registry, Id, WriteError), enumerateCollection: true);

            return;
        }

        var patterns = Tag?.Select(t => new WildcardPattern(t, WildcardOptions.IgnoreCase)).ToList();
        foreach (var child in registry.List())
        {
            if (patterns is null || patterns.Any(p => p.IsMatch(child.Tag)))
            {
                WriteObject(child);
            }
        }
    }
}
