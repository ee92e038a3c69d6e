using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Lists forked children from the registry, in any session; a child whose VMM died (or whose record cannot be
/// proved against the process table) shows as Exited, and a VMM of ours that no record knows as Orphaned.
/// </summary>
// The Id set is the default, with -Id optional (none: every child): the binder tries the default set first, so
// a piped object that has both Id and Tag (a child) is that child, not every child of its tag; an object with
// only a Tag (a snapshot) falls through to the Tag set.
[Cmdlet(VerbsCommon.Get, "ForkdChild", DefaultParameterSetName = "Id", HelpUri = HelpLinks.Base + "Get-ForkdChild.md")]
[OutputType(typeof(ForkdChild))]
public sealed class GetForkdChildCommand : ForkdCmdlet
{
    [Parameter(ParameterSetName = "Id", ValueFromPipelineByPropertyName = true)]
    [Alias("ChildId")]
    [ChildIdTransformation]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ChildIdCompleter))]
    public string[] Id { get; set; } = [];

    [Parameter(Position = 0, ParameterSetName = "Tag", ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string[]? Tag { get; set; }

    protected override void ProcessRecord()
    {
        var registry = Engine.Children;
        if (ParameterSetName == "Id" && Id.Length > 0)
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
