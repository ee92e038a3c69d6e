using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>Runs a command (argv, no shell) in each child, in parallel.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "ForkdExec", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Invoke-ForkdExec.md")]
[OutputType(typeof(ForkdExecResult))]
public sealed class InvokeForkdExecCommand : AgentCmdletBase<ForkdExecResult>
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string[] Command { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 30;

    /// <summary>Write only the result objects, no error record for a guest failure (for scripts that check Succeeded or ExitCode themselves).</summary>
    [Parameter]
    public SwitchParameter NoGuestError { get; set; }

    protected override ErrorRecord? GuestErrorFor(ForkdExecResult result) => NoGuestError ? null : GuestFailure.For(result);

    protected override string ShouldProcessAction => "Run a command";

    protected override Task<ForkdExecResult> CallAsync(ChildRegistry registry, ForkdChild child, CancellationToken cancellationToken) =>
        AgentCalls.ExecAsync(registry, child, Command, TimeSpan.FromSeconds(TimeoutSec), MaxReplyBytes, cancellationToken);
}
