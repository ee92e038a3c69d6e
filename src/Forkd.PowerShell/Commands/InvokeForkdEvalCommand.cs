using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>Evaluates Python code in each child's warm interpreter, in parallel.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "ForkdEval", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Invoke-ForkdEval.md")]
[OutputType(typeof(ForkdEvalResult))]
public sealed class InvokeForkdEvalCommand : AgentCmdletBase<ForkdEvalResult>
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Code { get; set; } = "";

    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 30;

    /// <summary>Write only the result objects, no error record for a guest failure (for scripts that check Succeeded or ExitCode themselves).</summary>
    [Parameter]
    public SwitchParameter NoGuestError { get; set; }

    protected override ErrorRecord? GuestErrorFor(ForkdEvalResult result) => NoGuestError ? null : GuestFailure.For(result);

    protected override string ShouldProcessAction => "Evaluate Python code";

    protected override Task<ForkdEvalResult> CallAsync(ChildRegistry registry, ForkdChild child, CancellationToken cancellationToken) =>
        AgentCalls.EvalAsync(registry, child, Code, TimeSpan.FromSeconds(TimeoutSec), MaxReplyBytes, cancellationToken);
}
