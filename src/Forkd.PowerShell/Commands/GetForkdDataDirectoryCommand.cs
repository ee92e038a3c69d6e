using System.Management.Automation;

namespace Forkd.PowerShell.Commands;

/// <summary>Shows where Forkd keeps its data (forkd's <c>where</c>).</summary>
[Cmdlet(VerbsCommon.Get, "ForkdDataDirectory", HelpUri = HelpLinks.Base + "Get-ForkdDataDirectory.md")]
[OutputType(typeof(Forkd.Core.Store.ForkdPaths))]
public sealed class GetForkdDataDirectoryCommand : ForkdCmdlet
{
    protected override void EndProcessing() => WriteObject(Paths);
}
