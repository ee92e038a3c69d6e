using Forkd.Core.Store;
using System.Diagnostics;
using System.Net.Sockets;

namespace Forkd.Core.Guest;

/// <summary>Connecting to a guest agent that may not be up yet.</summary>
public static class AgentWait
{
    /// <summary>
    /// Connects to the agent without retrying: <c>unix</c> (QEMU virtio-serial socket), <c>vsock</c>
    /// (Firecracker's hybrid vsock) or <c>tcp</c> (the guest's network, entered through its namespace).
    /// </summary>
    public static async Task<AgentClient> ConnectAsync(AgentEndpoint endpoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        switch (endpoint.Transport)
        {
            case AgentTransport.Unix:
                return await AgentClient.ConnectUnixAsync(endpoint.Address, timeout, cancellationToken).ConfigureAwait(false);
            case AgentTransport.Vsock:
                return await AgentClient.ConnectHybridVsockAsync(endpoint.Address, endpoint.Port ?? AgentEndpoint.DefaultPort,
                    timeout, cancellationToken).ConfigureAwait(false);
            case AgentTransport.Tcp when endpoint.NetworkNamespace is not null:
                // forkd's TCP rule (one request per connection): each request opens its own socket in the namespace.
                var netns = endpoint.NetworkNamespace;
                var target = $"{endpoint} in {netns}";
                var address = System.Net.IPAddress.Parse(endpoint.Address);
                var port = endpoint.Port ?? AgentEndpoint.DefaultPort;
                async Task<Socket> OpenInNamespace(CancellationToken ct)
                {
                    var socket = Host.NetworkNamespace.CreateTcpSocket(netns);
                    try
                    {
                        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        limit.CancelAfter(timeout);
                        await socket.ConnectAsync(address, port, limit.Token).ConfigureAwait(false);
                        return socket;
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                }

                (await OpenInNamespace(cancellationToken).ConfigureAwait(false)).Dispose(); // reachable now, as before
                return AgentClient.ForEachRequest(OpenInNamespace, target);

            case AgentTransport.Tcp:
                return await AgentClient.ConnectTcpAsync(endpoint.Address, endpoint.Port ?? AgentEndpoint.DefaultPort, timeout, cancellationToken).ConfigureAwait(false);
            default:
                throw new ForkdException("AgentTransportUnsupported", ForkdErrorKind.NotSupported,
                    $"agent transport '{endpoint.Transport}' is not supported by this host", endpoint.ToString());
        }
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
