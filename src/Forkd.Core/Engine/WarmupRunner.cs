using Forkd.Core.Guest;

namespace Forkd.Core.Engine;

/// <summary>Runs the warm-up code in the parent's agent interpreter; a guest exception fails the snapshot with its traceback.</summary>
internal static class WarmupRunner
{
    /// <summary>Warm-ups import big libraries; under TCG that can take minutes.</summary>
    public static TimeSpan Timeout { get; } = TimeSpan.FromMinutes(10);

    public static async Task RunAsync(AgentClient agent, string code, CancellationToken cancellationToken)
    {
        var result = await agent.EvalAsync(code, Timeout, cancellationToken).ConfigureAwait(false);
        if (result.Error is not null)
        {
            // The user's code raised: an argument problem, not a host one.
            throw new ForkdException("WarmupFailed", ForkdErrorKind.InvalidArgument,
                $"the warm-up code failed in the guest: {result.Error}{(result.Traceback is null ? "" : Environment.NewLine + result.Traceback)}", code)
            {
                Hint = "Fix -WarmupCode where the traceback points (try it first with Invoke-ForkdEval in a child of a snapshot made " +
                       "without it); the host is fine: the parent booted and its agent answered.",
            };
        }
    }
}
