using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>
/// Host side of Firecracker's hybrid vsock: connect to the device's Unix socket, send
/// <c>CONNECT &lt;port&gt;\n</c>, read <c>OK &lt;host port&gt;\n</c>; the same connection is then a byte
/// stream to the guest process listening on that vsock port. No guest network is needed.
/// </summary>
public static class HybridVsock
{
    public static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Opens a stream to guest vsock <paramref name="port"/> through the device socket at <paramref name="udsPath"/>.</summary>
    public static async Task<Stream> ConnectAsync(string udsPath, int port, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(HandshakeTimeout);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(udsPath), limit.Token).ConfigureAwait(false);
                var request = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"CONNECT {port}\n"));
                await socket.SendAsync(request, SocketFlags.None, limit.Token).ConfigureAwait(false);
                var reply = await ReadLineAsync(socket, limit.Token).ConfigureAwait(false);
                if (reply is null || !reply.StartsWith("OK ", StringComparison.Ordinal))
                {
                    // Firecracker closes the connection when nothing listens on the port.
                    throw new ForkdException("VsockConnectRefused", ForkdErrorKind.ConnectionFailed,
                        $"nothing in the guest accepted vsock port {port} (through {udsPath}){(reply is null ? "" : ": " + reply)}", udsPath)
                    {
                        Hint = "The guest agent may not be up yet, or the guest kernel lacks the vsock modules.",
                    };
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ForkdException("VsockConnectTimeout", ForkdErrorKind.Timeout,
                    $"vsock handshake with port {port} through {udsPath} took longer than {HandshakeTimeout.TotalSeconds:0} s", udsPath);
            }
            catch (SocketException ex)
            {
                throw new ForkdException("VsockConnectFailed", ForkdErrorKind.ConnectionFailed,
                    $"cannot connect to the vsock socket {udsPath}: {ex.Message}", udsPath, ex);
            }

            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads the acknowledgement byte by byte so that no guest data after it is swallowed.</summary>
    private static async Task<string?> ReadLineAsync(Socket socket, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (line.Length < 64)
        {
            var n = await socket.ReceiveAsync(one, SocketFlags.None, ct).ConfigureAwait(false);
            if (n == 0)
            {
                return line.Length == 0 ? null : line.ToString();
            }

            if (one[0] == (byte)'\n')
            {
                return line.ToString();
            }

            line.Append((char)one[0]);
        }

        return line.ToString();
    }
}
