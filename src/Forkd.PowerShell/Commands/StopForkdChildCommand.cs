using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>Ends children and removes everything they had: process, sockets, work dir, cgroup, registry entry.</summary>
[Cmdlet(VerbsLifecycle.Stop, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(void))]
public sealed class StopForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = [];

    protected override void ProcessRecord()
    {
        var registry = Engine.Children;
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
                RunEngine(_ => Engine.StopChildAsync(child));
                WriteVerbose($"stopped {child.Id}; removed {child.WorkDirectory}{(child.CgroupPath is null ? "" : " and " + child.CgroupPath)}");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                WriteError("ChildStopFailed", ErrorCategory.WriteError, $"could not clean up child {id}: {ex.Message}", id, inner: ex);
            }
        }
    }
}
