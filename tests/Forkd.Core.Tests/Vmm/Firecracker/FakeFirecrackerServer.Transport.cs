using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Tests.Firecracker;

// The stand-in's transports: HTTP/1.1 on the API socket (a minimal parser, test scaffolding only)
// and the hybrid vsock device with a stand-in guest agent behind it.
public sealed partial class FakeFirecrackerServer
{
    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_tasks)
            {
                _tasks.Add(Task.Run(() => ServeAsync(client)));
            }
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var _ = client;
        await using var stream = new NetworkStream(client, ownsSocket: false);
        var buffer = new List<byte>();
        var chunk = new byte[4096];
        while (!_stop.IsCancellationRequested)
        {
            int headerEnd;
            while ((headerEnd = IndexOf(buffer, "\r\n\r\n"u8)) < 0)
            {
                int n;
                try
                {
                    n = await stream.ReadAsync(chunk, _stop.Token);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    return;
                }

                if (n == 0)
                {
                    return;
                }

                buffer.AddRange(chunk.AsSpan(0, n).ToArray());
            }

            var head = Encoding.ASCII.GetString(buffer.GetRange(0, headerEnd).ToArray()).Split("\r\n");
            buffer.RemoveRange(0, headerEnd + 4);
            var requestLine = head[0].Split(' ');
            var headers = head.Skip(1).Select(h => h.Split(':', 2)).Where(h => h.Length == 2)
                .ToDictionary(h => h[0].Trim().ToLowerInvariant(), h => h[1].Trim());
            string response;
            if (requestLine.Length != 3 || requestLine[2] != "HTTP/1.1")
            {
                response = Fault(Violation($"malformed request line '{head[0]}'"));
            }
            else if (headers.TryGetValue("transfer-encoding", out var encoding))
            {
                // Firecracker's HTTP server reads bodies by Content-Length only.
                response = Fault(Violation($"{requestLine[0]} {requestLine[1]}: body sent with Transfer-Encoding '{encoding}' instead of Content-Length"));
                buffer.Clear();
            }
            else
            {
                var length = headers.TryGetValue("content-length", out var cl) ? int.Parse(cl, CultureInfo.InvariantCulture) : 0;
                while (buffer.Count < length)
                {
                    var n = await stream.ReadAsync(chunk, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    buffer.AddRange(chunk.AsSpan(0, n).ToArray());
                }

                var body = Encoding.UTF8.GetString(buffer.GetRange(0, length).ToArray());
                buffer.RemoveRange(0, length);
                lock (_drives)
                {
                    response = Handle(requestLine[0], requestLine[1], body, headers);
                }
            }

            await stream.WriteAsync(Encoding.UTF8.GetBytes(response), _stop.Token);
        }
    }

    /// <summary>The hybrid vsock handshake, then a guest that answers each line with "echo: line".</summary>
    private async Task VsockLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _vsockListener!.AcceptAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using var c = client;
                await using var stream = new NetworkStream(c);
                using var reader = new StreamReader(stream, Encoding.ASCII);
                var line = await reader.ReadLineAsync(_stop.Token);
                var parts = line?.Split(' ');
                if (parts is not ["CONNECT", var p] || !int.TryParse(p, CultureInfo.InvariantCulture, out var port) || !GuestVsockPorts.Contains(port))
                {
                    return; // Firecracker drops the connection when no guest socket accepts it
                }

                await stream.WriteAsync(Encoding.ASCII.GetBytes("OK 1073741824\n"), _stop.Token);
                while (await reader.ReadLineAsync(_stop.Token) is { } request)
                {
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(GuestAgentReply(request) + "\n"), _stop.Token);
                }
            });
        }
    }

    /// <summary>A stand-in guest agent (one JSON object per line): ping answers pong, eval answers the code it was given and which VM it is.</summary>
    private string GuestAgentReply(string line)
    {
        JsonObject request;
        try
        {
            request = JsonNode.Parse(line)!.AsObject();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return "echo: " + line;
        }

        var reply = new JsonObject { ["id"] = request["id"]?.DeepClone() };
        switch ((string?)request["action"])
        {
            case "ping":
                reply["pong"] = true;
                reply["pid"] = 1;
                break;
            case "eval":
                var code = (string?)request["code"] ?? "";
                reply["result"] = $"'{code}' from {Path.GetFileName(WorkingDirectory)}"; // which VM answered
                reply["result_json"] = JsonValue.Create(code)!.ToJsonString();
                break;
            default:
                reply["error"] = "unsupported by the stand-in guest";
                break;
        }

        return reply.ToJsonString();
    }

    private static int IndexOf(List<byte> buffer, ReadOnlySpan<byte> pattern)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(buffer);
        return span.IndexOf(pattern);
    }

    private const string NoContent = "HTTP/1.1 204 No Content\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n";

    private static string Ok(JsonObject body) => Respond("200 OK", body);

    private static string Fault(string message) => Respond("400 Bad Request", new JsonObject { ["fault_message"] = message });

    private static string Respond(string status, JsonObject body)
    {
        var bytes = Encoding.UTF8.GetByteCount(body.ToJsonString());
        return $"HTTP/1.1 {status}\r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\n\r\n{body.ToJsonString()}";
    }
}
