using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Forkd.Core.Tests.Hub;

/// <summary>Ways to be slow on purpose.</summary>
public enum Stall
{
    /// <summary>Accept, read the request, never answer.</summary>
    BeforeHeaders,

    /// <summary>Send the headers and half the body, then nothing (connection kept open).</summary>
    AfterHeaders,

    /// <summary>Send the headers, then one byte a second.</summary>
    Drip,

    /// <summary>PUT: read the headers, never read the body, never answer.</summary>
    NeverReadBody,
}

/// <summary>What the server saw of one PUT.</summary>
public sealed record ReceivedUpload(string Path, long? ContentLength, bool HasContentType, bool Chunked, long BodyBytes, string Sha256, byte[] Body);

/// <summary>
/// A real HTTP/1.1 server on 127.0.0.1 (random port), written on raw sockets so it can misbehave on
/// purpose: serve files, answer 404/403, redirect, cut a body off mid-way, and record PUTs.
/// </summary>
public sealed class TestHttpServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public TestHttpServer()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(AcceptLoop);
    }

    public int Port { get; }

    public ConcurrentDictionary<string, byte[]> Files { get; } = new();

    public ConcurrentDictionary<string, string> Redirects { get; } = new();

    public ConcurrentDictionary<string, int> Statuses { get; } = new();

    /// <summary>Paths whose response (GET) or request (PUT) is cut off half-way by closing the socket.</summary>
    public ConcurrentDictionary<string, bool> Drops { get; } = new();

    public ConcurrentQueue<ReceivedUpload> Uploads { get; } = new();

    public ConcurrentDictionary<string, Stall> Stalls { get; } = new();

    public Uri Url(string path) => new($"http://127.0.0.1:{Port}{path}");

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var (method, path, headers) = await ReadHead(stream);
                var route = path.Split('?')[0];
                if (Redirects.TryGetValue(route, out var location))
                {
                    var code = method == "PUT" ? "307 Temporary Redirect" : "302 Found";
                    if (method == "PUT")
                    {
                        await ReadBody(stream, headers, int.MaxValue);
                    }

                    await Write(stream, $"HTTP/1.1 {code}\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }

                if (Stalls.TryGetValue(route, out var stall))
                {
                    await StallOn(stream, stall, route, headers);
                    return;
                }

                if (Statuses.TryGetValue(route, out var status))
                {
                    if (method == "PUT")
                    {
                        // Read the body first: answering mid-upload makes the client see a reset, not the status.
                        await ReadBody(stream, headers, int.MaxValue);
                    }

                    var reason = status == 403 ? "Forbidden" : status == 404 ? "Not Found" : "Error";
                    var body = status == 403 ? "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" : "nope";
                    await Write(stream, $"HTTP/1.1 {status} {reason}\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}");
                    return;
                }

                if (method == "PUT")
                {
                    var drop = Drops.ContainsKey(route);
                    headers.TryGetValue("content-length", out var cl);
                    var length = cl is null ? (long?)null : long.Parse(cl, CultureInfo.InvariantCulture);
                    var body = await ReadBody(stream, headers, drop ? (int)((length ?? 2) / 2) : int.MaxValue);
                    if (drop)
                    {
                        client.Client.LingerState = new LingerOption(true, 0); // RST, as a proxy that gives up would
                        return;
                    }

                    Uploads.Enqueue(new ReceivedUpload(route, length, headers.ContainsKey("content-type"),
                        headers.TryGetValue("transfer-encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase),
                        body.Length, Convert.ToHexStringLower(SHA256.HashData(body)), body));
                    await Write(stream, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    return;
                }

                if (!Files.TryGetValue(route, out var file))
                {
                    await Write(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
                    return;
                }

                await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Type: application/zstd\r\nContent-Length: {file.Length}\r\nConnection: close\r\n\r\n");
                if (Drops.ContainsKey(route))
                {
                    await stream.WriteAsync(file.AsMemory(0, file.Length / 2));
                    await stream.FlushAsync();
                    client.Client.LingerState = new LingerOption(true, 0);
                    return;
                }

                await stream.WriteAsync(file);
            }
            catch (IOException)
            {
            }
            catch (SocketException)
            {
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task StallOn(NetworkStream stream, Stall stall, string route, Dictionary<string, string> headers)
    {
        var file = Files.TryGetValue(route, out var f) ? f : new byte[1 << 20];
        switch (stall)
        {
            case Stall.BeforeHeaders or Stall.NeverReadBody:
                break;
            case Stall.AfterHeaders:
                await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Length: {file.Length}\r\nConnection: close\r\n\r\n");
                await stream.WriteAsync(file.AsMemory(0, file.Length / 2));
                await stream.FlushAsync();
                break;
            case Stall.Drip:
                await Write(stream, $"HTTP/1.1 200 OK\r\nContent-Length: {file.Length}\r\nConnection: close\r\n\r\n");
                for (var i = 0; i < file.Length && !_stop.IsCancellationRequested; i++)
                {
                    await stream.WriteAsync(file.AsMemory(i, 1));
                    await Task.Delay(1000, _stop.Token);
                }

                return;
        }

        _ = headers;
        // Hold the connection open until the client gives up (or the server is disposed).
        var one = new byte[1];
        try
        {
            while (stall != Stall.NeverReadBody && await stream.ReadAsync(one, _stop.Token) > 0)
            {
            }

            if (stall == Stall.NeverReadBody)
            {
                await Task.Delay(Timeout.Infinite, _stop.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static async Task<(string Method, string Path, Dictionary<string, string> Headers)> ReadHead(NetworkStream stream)
    {
        var head = new List<byte>();
        var one = new byte[1];
        while (head.Count < 4 || !(head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
        {
            if (await stream.ReadAsync(one) == 0)
            {
                throw new IOException("client closed");
            }

            head.Add(one[0]);
        }

        var lines = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var parts = lines[0].Split(' ');
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        return (parts[0], parts[1], headers);
    }

    private static async Task<byte[]> ReadBody(NetworkStream stream, Dictionary<string, string> headers, int limit)
    {
        if (!headers.TryGetValue("content-length", out var cl))
        {
            return [];
        }

        var length = (int)Math.Min(long.Parse(cl, CultureInfo.InvariantCulture), limit);
        var body = new byte[length];
        await stream.ReadExactlyAsync(body);
        return body;
    }

    private static async Task Write(NetworkStream stream, string text) => await stream.WriteAsync(Encoding.UTF8.GetBytes(text));

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        _listener.Dispose();
        _stop.Dispose();
    }
}
