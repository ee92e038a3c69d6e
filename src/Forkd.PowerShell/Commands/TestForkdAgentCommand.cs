using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>Pings each child's agent, in parallel.</summary>
[Cmdlet(VerbsDiagnostic.Test, "ForkdAgent", HelpUri = HelpLinks.Base + "Test-ForkdAgent.md")]
[OutputType(typeof(ForkdAgentStatus))]
public sealed class TestForkdAgentCommand : AgentCmdletBase<ForkdAgentStatus>
{
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 5;

    /// <summary>An agent that does not answer is a result (Responding = false), not an error: that is what a test reports.</summary>
    protected override async Task<ForkdAgentStatus> CallAsync(ChildRegistry registry, ForkdChild child, CancellationToken cancellationToken)
    {
        try
        {
            return await AgentCalls.PingAsync(registry, child, TimeSpan.FromSeconds(TimeoutSec), MaxReplyBytes, cancellationToken).ConfigureAwait(false);
        }
        catch (ForkdException ex) when (ex.ErrorId == "WarmStateLost")
        {
            return new ForkdAgentStatus { ChildId = child.Id, Responding = true, WarmStateLost = true, Error = $"{ex.ErrorId}: {ex.Message}" };
        }
        catch (ForkdException ex)
        {
            return new ForkdAgentStatus { ChildId = child.Id, Responding = false, Error = $"{ex.ErrorId}: {ex.Message}" };
        }
    }
}
