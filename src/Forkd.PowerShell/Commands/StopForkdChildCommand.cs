using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Ends children (recorded or orphaned) and removes everything they had: process, sockets, work dir, cgroup,
/// registry entry. A pid is signalled only when it is provably the child's VMM; only a real work dir is deleted.
/// </summary>
[Cmdlet(VerbsLifecycle.Stop, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class StopForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = [];

    protected override void ProcessRecord()
    {
        var registry = new ChildRegistry(Paths);
        foreach (var id in Id)
        {
            var child = registry.Get(id);
            if (child is null)
            {
                WriteError("ChildNotFound", ErrorCategory.ObjectNotFound, $"no child with id '{id}'", id, "Get-ForkdChild lists the known children.");
                continue;
            }

            if (!ShouldProcess($"{child.Id} (pid {child.ProcessId}, {child.State})", "Stop child"))
            {
                continue;
            }

            try
            {
                var result = ChildStopper.StopAsync(registry, child).GetAwaiter().GetResult();
                foreach (var skipped in result.Skipped)
                {
                    WriteWarning($"{child.Id}: {skipped}");
                }

                WriteVerbose($"stopped {child.Id}{(result.Signalled ? $" (killed pid {child.ProcessId})" : "")}" +
                             $"{(result.RemovedWorkDirectory ? "; removed " + child.WorkDirectory : "")}");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                WriteError("ChildStopFailed", ErrorCategory.WriteError, $"could not clean up child {id}: {ex.Message}", id, inner: ex);
            }
        }
    }
}
