using System.Diagnostics;
using Forkd.Core.Guest;

namespace Forkd.Core.Engine;

/// <summary>
/// The agent answers ping while the recipe's warm-up process (Node, Chromium) is still starting; a
/// snapshot taken then would give every child a half-started warm-up. Polls ping's warmup_ready.
/// </summary>
public static class WarmupBridgeWait
{
    public static async Task UntilReadyAsync(AgentClient agent, TimeSpan timeout, Func<bool> stillRunning, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(agent);
        ArgumentNullException.ThrowIfNull(stillRunning);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!stillRunning())
            {
                throw new ForkdException("VmExited", ForkdErrorKind.Failed, "the parent VM exited while its warm-up process was starting", null);
            }

            var ping = await agent.PingAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
            if (ping.WarmupReady)
            {
                return;
            }

            // Our agent says when the handshake is over without a ready line; waiting longer would change nothing.
            if (ping.WarmupState is "failed" or "none" || clock.Elapsed > timeout)
            {
                throw new ForkdException("WarmupNotReady", ForkdErrorKind.Timeout,
                    ping.WarmupState is "failed" or "none"
                        ? $"the recipe's warm-up process ended its handshake without a ready line (state '{ping.WarmupState}')"
                        : $"the recipe's warm-up process did not report ready within {timeout.TotalSeconds:0} s", null)
                {
                    Hint = "The warm-up process writes its errors to the guest console ('forkd-warmup:' lines in the parent's serial.log); try the recipe's command by hand in a child of a snapshot taken without waiting.",
                };
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }
}
