using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Forkd.Core.Guest;

/// <summary>How an <see cref="AgentClient"/> reaches a guest: QEMU's chardev socket, TCP, Firecracker's hybrid vsock.</summary>
public sealed partial class AgentClient
{
    /// <summary>Connects to a Unix socket (QEMU's agent chardev), retrying while it does not exist yet or refuses.</summary>
    public static async Task<AgentClient> ConnectUnixAsync(string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                return new AgentClient(new NetworkStream(socket, ownsSocket: true), "unix:" + path);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                if (clock.Elapsed >= timeout)
                {
                    throw Unreachable($"cannot connect to the agent socket {path} within {timeout.TotalSeconds:0.#} s: {ex.Message}", path, ex);
                }
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Connects through Firecracker's hybrid vsock: the Unix socket at <paramref name="udsPath"/>, then
    /// <c>CONNECT &lt;port&gt;\n</c> and its <c>OK &lt;hostport&gt;\n</c> answer (Firecracker's docs/vsock.md).
    /// Firecracker closes the connection while nothing listens in the guest, so that is retried too.
    /// </summary>
    public static async Task<AgentClient> ConnectHybridVsockAsync(string udsPath, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(udsPath);
        var clock = Stopwatch.StartNew();
        var target = $"vsock:{udsPath}:{port}";
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            string? failure;
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(udsPath), cancellationToken).ConfigureAwait(false);
                var stream = new NetworkStream(socket, ownsSocket: true);
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {port}\n"), cancellationToken).ConfigureAwait(false);
                using var answerLimit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                answerLimit.CancelAfter(TimeSpan.FromSeconds(5));
                var answer = await ReadAsciiLineAsync(stream, answerLimit.Token).ConfigureAwait(false);
                if (answer is not null && answer.StartsWith("OK ", StringComparison.Ordinal))
                {
                    return new AgentClient(stream, target);
                }

                await stream.DisposeAsync().ConfigureAwait(false);
                failure = answer is null ? "the VMM closed the connection (no listener on that port yet?)" : $"unexpected answer '{answer}'";
            }
            catch (Exception ex) when (ex is SocketException or IOException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                socket.Dispose();
                failure = ex.Message;
            }
            catch
            {
                socket.Dispose();
                throw;
            }

            if (clock.Elapsed >= timeout)
            {
                throw Unreachable($"cannot reach the agent on vsock port {port} through {udsPath} within {timeout.TotalSeconds:0.#} s: {failure}", target, null);
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads one '\n'-terminated line byte by byte, so nothing after it is consumed; null at EOF.</summary>
    private static async Task<string?> ReadAsciiLineAsync(Stream stream, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (line.Length < 256)
        {
            if (await stream.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
            {
                return null;
            }

            if (one[0] == (byte)'\n')
            {
                return line.ToString();
            }

            line.Append((char)one[0]);
        }

        return line.ToString();
    }

    /// <summary>
    /// Waits until the agent accepts TCP connections at <paramref name="host"/>:<paramref name="port"/> (retrying until
    /// <paramref name="timeout"/>), then returns a client that opens one connection per request, as forkd's agent serves TCP.
    /// </summary>
    public static async Task<AgentClient> ConnectTcpAsync(string host, int port, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = await OpenTcpAsync(host, port, cancellationToken).ConfigureAwait(false);
                return ForEachRequest(ct => OpenTcpAsync(host, port, ct), $"tcp:{host}:{port}");
            }
            catch (SocketException ex)
            {
                if (clock.Elapsed >= timeout)
                {
                    throw Unreachable($"cannot connect to the agent at {host}:{port} within {timeout.TotalSeconds:0.#} s: {ex.Message}", $"{host}:{port}", ex);
                }
            }

            await Task.Delay(50, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<Socket> OpenTcpAsync(string host, int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
