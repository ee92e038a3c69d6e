using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Ends children (recorded or orphaned) and removes everything they had: process, sockets, work dir, cgroup,
/// registry entry. A pid is signalled only when it is provably the child's VMM; only a real work dir is deleted.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Stop-ForkdChild.md")]
[OutputType(typeof(ForkdChild))]
public sealed class StopForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ChildId")]
    [ChildIdTransformation]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ChildIdCompleter))]
    public string[] Id { get; set; } = [];

    /// <summary>Writes each stopped child (as it was before it stopped).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private bool _stoppedAny;

    /// <summary>
    /// After stopping: work dirs of forks killed before their VMM started (no VMM, no record, creator gone) go too,
    /// so stopping everything listed leaves nothing behind.
    /// </summary>
    protected override void EndProcessing()
    {
        if (_stoppedAny)
        {
            foreach (var dir in Engine.Children.RemoveAbandonedWorkDirectories())
            {
                WriteVerbose($"removed {dir} (a killed fork's work dir that never got a VMM)");
            }
        }
    }

    protected override void ProcessRecord()
    {
        var registry = Engine.Children;
        foreach (var child in ChildLookup.Resolve(registry, Id, WriteError))
        {
            var id = child.Id;
            if (!ShouldProcess($"{child.Id} (pid {child.ProcessId}, {child.State})", "Stop child"))
            {
                continue;
            }

            try
            {
                var result = RunEngine(_ => Engine.StopChildAsync(child));
                _stoppedAny = true;
                foreach (var skipped in result.Skipped)
                {
                    WriteWarning($"{child.Id}: {skipped}");
                }

                WriteVerbose($"stopped {child.Id}{(result.Signalled ? $" (killed pid {child.ProcessId})" : "")}" +
                             $"{(result.RemovedWorkDirectory ? "; removed " + child.WorkDirectory : "")}");
                if (PassThru)
                {
                    WriteObject(child with { State = ChildState.Exited });
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                WriteError("ChildStopFailed", ErrorCategory.WriteError, $"could not clean up child {id}: {ex.Message}", id, inner: ex);
            }
        }
    }
}
