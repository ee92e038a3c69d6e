using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.PowerShell.Commands;

/// <summary>Pauses running children (their vCPUs stop; memory and devices stay as they are).</summary>
[Cmdlet(VerbsLifecycle.Suspend, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, HelpUri = HelpLinks.Base + "Suspend-ForkdChild.md")]
[OutputType(typeof(ForkdChild))]
public sealed class SuspendForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord() => ChildPauseResume.Apply(this, Id, "Suspend child", PassThru,
        id => RunEngine(call => Engine.Checkpoints.SuspendAsync(id, call.CancellationToken)));
}

/// <summary>Continues paused children.</summary>
[Cmdlet(VerbsLifecycle.Resume, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, HelpUri = HelpLinks.Base + "Resume-ForkdChild.md")]
[OutputType(typeof(ForkdChild))]
public sealed class ResumeForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] Id { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord() => ChildPauseResume.Apply(this, Id, "Resume child", PassThru,
        id => RunEngine(call => Engine.Checkpoints.ResumeAsync(id, call.CancellationToken)));
}

/// <summary>The loop both cmdlets share: ShouldProcess per child, one error per failed child, the child out with -PassThru.</summary>
internal static class ChildPauseResume
{
    public static void Apply(ForkdCmdlet cmdlet, string[] ids, string action, bool passThru, Func<string, ForkdChild> change)
    {
        foreach (var id in ids)
        {
            if (!cmdlet.ShouldProcess(id, action))
            {
                continue;
            }

            try
            {
                var child = change(id);
                if (passThru)
                {
                    cmdlet.WriteObject(child);
                }
            }
            catch (ForkdException ex)
            {
                cmdlet.WriteError(ForkdCmdlet.ToErrorRecord(ex, id));
            }
        }
    }
}
