using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Forkd.Core.Guest;

/// <summary>forkd's TCP rule: one request per connection, the write side half-closed, the reply read to its newline.</summary>
public sealed partial class AgentClient
{
    /// <summary>A client that opens a new connection with <paramref name="connect"/> for every request (and every cancel).</summary>
    public static AgentClient ForEachRequest(Func<CancellationToken, Task<Socket>> connect, string target)
    {
        ArgumentNullException.ThrowIfNull(connect);
        return new AgentClient(connect, target);
    }

    private async Task<JsonObject> SendOnNewConnectionAsync(JsonObject message, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_closed is not null)
            {
                throw _closed;
            }
        }

        Socket socket;
        try
        {
            socket = await _connect!(cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            throw Unreachable($"cannot connect to the agent at {Target}: {ex.Message}", Target, ex);
        }

        var stream = new NetworkStream(socket, ownsSocket: true);
        await using (stream.ConfigureAwait(false))
        {
            try
            {
                await stream.WriteAsync(Utf8(message.ToJsonString() + "\n"), cancellationToken).ConfigureAwait(false);
                socket.Shutdown(SocketShutdown.Send);
                var line = await new BoundedLineReader(stream, () => MaxReplyBytes, Target).ReadLineAsync(cancellationToken).ConfigureAwait(false);
                if (line is null)
                {
                    // The agent process died with our request (its socket closed at once): say so now, not at the timeout.
                    throw Unreachable($"the agent at {Target} closed the connection without answering (did the agent die?)", Target, null);
                }

                return ParseObject(line)
                    ?? throw Protocol($"the agent at {Target} sent a line that is not a JSON object: {Truncate(System.Text.Encoding.UTF8.GetString(line, 0, Math.Min(line.Length, 400)))}");
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
                throw Unreachable($"lost the connection to the agent at {Target}: {ex.Message}", Target, ex);
            }
        }
    }
}
