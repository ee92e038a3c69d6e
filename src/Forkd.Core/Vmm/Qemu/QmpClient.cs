using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// QEMU Machine Protocol over a Unix socket: JSON objects, one per line each way. A QMP socket
/// serves one client at a time (a second connection blocks silently), so each VM gets exactly one
/// client for its whole life. Commands carry an id; replies are matched on it and events are
/// kept for <see cref="WaitForEventAsync"/>.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly StreamReader _reader;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly List<JsonObject> _events = [];
    private long _nextId;

    internal QmpClient(Stream stream)
    {
        _stream = stream;
        _reader = new StreamReader(stream, new UTF8Encoding(false), false, 4096, leaveOpen: true);
    }

    /// <summary>The greeting's version object (<c>{"qemu": {...}, "package": ...}</c>).</summary>
    public JsonObject? Version { get; private set; }

    /// <summary>Connects (retrying until the socket exists and accepts), reads the greeting and negotiates capabilities.</summary>
    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        Socket socket;
        while (true)
        {
            socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token).ConfigureAwait(false);
                break;
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
                if (deadline.IsCancellationRequested)
                {
                    throw new ForkdException("QmpConnectTimeout", ForkdErrorKind.Timeout,
                        $"QEMU's QMP socket {socketPath} did not accept a connection within {timeout.TotalSeconds:0.#} s", socketPath, ex);
                }
            }

            // Not listening yet (QEMU still starting): try again shortly.
            await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
        }

        var client = new QmpClient(new NetworkStream(socket, ownsSocket: true));
        try
        {
            await client.HandshakeAsync(deadline.Token).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads the greeting and sends <c>qmp_capabilities</c>. Public for tests over an in-memory stream.</summary>
    internal async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        var greeting = await ReadObjectAsync(cancellationToken).ConfigureAwait(false);
        if (greeting["QMP"] is not JsonObject qmp)
        {
            throw Protocol("expected the QMP greeting, got " + greeting.ToJsonString());
        }

        Version = qmp["version"] as JsonObject;
        await ExecuteAsync("qmp_capabilities", null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs one command and returns its <c>return</c> value; a QMP <c>error</c> reply throws <c>QmpCommandFailed</c>.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var id = "forkd-" + Interlocked.Increment(ref _nextId).ToString(CultureInfo.InvariantCulture);
            var request = new JsonObject { ["execute"] = command, ["id"] = id };
            if (arguments is not null)
            {
                request["arguments"] = arguments.DeepClone();
            }

            var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
            await _stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            await _stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var reply = await ReadObjectAsync(cancellationToken).ConfigureAwait(false);
                if (reply.ContainsKey("event"))
                {
                    lock (_events)
                    {
                        _events.Add(reply);
                    }

                    continue;
                }

                if (reply["id"]?.GetValue<string>() != id)
                {
                    continue; // a reply to a command whose caller gave up (cancelled); not ours
                }

                if (reply["error"] is JsonObject error)
                {
                    var cls = error["class"]?.ToString() ?? "GenericError";
                    var desc = error["desc"]?.ToString() ?? error.ToJsonString();
                    throw new ForkdException("QmpCommandFailed", ForkdErrorKind.Failed, $"QEMU refused '{command}': {cls}: {desc}", command);
                }

                return reply["return"];
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Waits for the first event (already received or still to come) that <paramref name="match"/> accepts, and
    /// removes it from <see cref="Events"/>: QEMU says when something finished, so nothing needs to poll.
    /// </summary>
    public async Task<JsonObject> WaitForEventAsync(Func<JsonObject, bool> match, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(match);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_events)
            {
                var seen = _events.FindIndex(e => match(e));
                if (seen >= 0)
                {
                    var found = _events[seen];
                    _events.RemoveAt(seen);
                    return found;
                }
            }

            while (true)
            {
                var message = await ReadObjectAsync(cancellationToken).ConfigureAwait(false);
                if (!message.ContainsKey("event"))
                {
                    continue; // a late reply to a command whose caller gave up
                }

                if (match(message))
                {
                    return message;
                }

                lock (_events)
                {
                    _events.Add(message);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Events received so far while waiting for replies (e.g. <c>STOP</c>, <c>RESUME</c>, <c>MIGRATION</c>).</summary>
    public IReadOnlyList<JsonObject> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    private async Task<JsonObject> ReadObjectAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
                       ?? throw new ForkdException("QmpDisconnected", ForkdErrorKind.ConnectionFailed, "QEMU closed the QMP connection (did the VM exit?)");
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                return JsonNode.Parse(line) as JsonObject ?? throw Protocol("QMP sent a non-object: " + line);
            }
            catch (JsonException ex)
            {
                throw new ForkdException("QmpProtocolError", ForkdErrorKind.ProtocolError, "QMP sent invalid JSON: " + line, null, ex);
            }
        }
    }

    private static ForkdException Protocol(string message) => new("QmpProtocolError", ForkdErrorKind.ProtocolError, message);

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync().ConfigureAwait(false);
        _gate.Dispose();
    }
}
