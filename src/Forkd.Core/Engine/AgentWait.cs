using System.Diagnostics;
using System.Net.Sockets;
using Forkd.Core.Guest;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>Connecting to a guest agent that may not be up yet.</summary>
public static class AgentWait
{
    /// <summary>Connects to the agent (Unix-socket transports) without retrying.</summary>
    public static Task<AgentClient> ConnectAsync(AgentEndpoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint.Transport != "unix")
        {
            throw new ForkdException("AgentTransportUnsupported", ForkdErrorKind.NotSupported,
                $"agent transport '{endpoint.Transport}' is not supported by this host", endpoint.ToString());
        }

        return AgentClient.ConnectUnixAsync(endpoint.Address, timeout, cancellationToken);
    }

    /// <summary>
    /// Connects and pings until the agent answers or <paramref name="timeout"/> passes; returns the connected
    /// client. <paramref name="stillRunning"/> lets a dead VMM end the wait at once instead of at the timeout.
    /// </summary>
    public static async Task<AgentClient> UntilReadyAsync(AgentEndpoint endpoint, TimeSpan timeout, Func<bool>? stillRunning, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var attemptTimeout = TimeSpan.FromSeconds(2);
        Exception? last = null;
        while (clock.Elapsed < timeout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (stillRunning is not null && !stillRunning())
            {
                throw new ForkdException("VmExited", ForkdErrorKind.Failed,
                    $"the VM exited before its agent answered{(last is null ? "" : $" (last error: {last.Message})")}", endpoint.ToString());
            }

            AgentClient? client = null;
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(attemptTimeout);
                client = await ConnectAsync(endpoint, attemptTimeout, attempt.Token).ConfigureAwait(false);
                await client.PingAsync(attemptTimeout, attempt.Token).ConfigureAwait(false);
                return client;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested &&
                                       ex is IOException or SocketException or OperationCanceledException or ForkdException or TimeoutException)
            {
                last = ex;
                if (client is not null)
                {
                    await client.DisposeAsync().ConfigureAwait(false);
                }

                await Task.Delay(50, cancellationToken).ConfigureAwait(false);
            }
        }

        throw new ForkdException("AgentTimeout", ForkdErrorKind.Timeout,
            $"the guest agent at {endpoint} did not answer within {timeout.TotalSeconds:0} s{(last is null ? "" : $" (last error: {last.Message})")}",
            endpoint.ToString());
    }
}
