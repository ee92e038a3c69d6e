using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Guest;

/// <summary>
/// Host side of the guest agent protocol over any connected stream (QEMU's virtio-serial chardev
/// socket, TCP, vsock). Each request is one JSON line carrying an id; replies are matched by id,
/// so a stale reply (to a request that timed out, or one a parent wrote just before its snapshot)
/// is dropped instead of answering the wrong request. Replies without an id (forkd 0.1.3's agent)
/// answer the oldest request. Thread-safe; requests may overlap.
/// </summary>
public sealed partial class AgentClient : IAsyncDisposable, IDisposable
{
    public static readonly TimeSpan DefaultExecTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Extra time the host waits beyond an exec's own timeout (the guest must still kill the process and reply).</summary>
    private static readonly TimeSpan ExecReplyGrace = TimeSpan.FromSeconds(15);

    private readonly Stream _input;
    private readonly Stream _output;
    private readonly bool _ownsStreams;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskCompletionSource<JsonObject>> _pending = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly string _idPrefix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _reader;
    private long _nextId;
    private long _staleReplies;
    private ForkdException? _closed;

    /// <summary>Talks over one duplex stream (a socket).</summary>
    public AgentClient(Stream stream, string target = "agent", bool ownsStream = true)
        : this(stream, stream, target, ownsStream)
    {
    }

    /// <summary>Reads replies from <paramref name="input"/> and writes requests to <paramref name="output"/> (a process's stdout/stdin).</summary>
    public AgentClient(Stream input, Stream output, string target, bool ownsStreams = true)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        _input = input;
        _output = output;
        _ownsStreams = ownsStreams;
        Target = target;
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <summary>What this client talks to, for messages (<c>unix:/path</c>, <c>tcp:host:port</c>).</summary>
    public string Target { get; }

    /// <summary>How long <see cref="PingAsync"/> and <see cref="EvalAsync"/> wait by default.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Replies that matched no waiting request and were dropped.</summary>
    public long StaleReplies => Interlocked.Read(ref _staleReplies);

    public async Task<AgentPing> PingAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var reply = await SendAsync(new JsonObject { ["action"] = "ping" }, timeout ?? DefaultTimeout, cancellationToken).ConfigureAwait(false);
        if (reply["pong"] is not JsonValue pong || !pong.TryGetValue<bool>(out var ok) || !ok)
        {
            throw Protocol($"ping answered without \"pong\": true: {Truncate(reply.ToJsonString())}");
        }

        var numpy = Text(reply, "numpy_version");
        return new AgentPing(numpy is null or "not-installed" ? null : numpy, Int(reply, "pid") ?? 0, Text(reply, "agent_lang") ?? "python",
            Bool(reply, "warmup_ready"), Text(reply, "python_version"), clock.Elapsed);
    }

    /// <summary>Runs <paramref name="argv"/> in the guest (no shell) with the default 30 s limit.</summary>
    public Task<ExecResult> ExecAsync(IReadOnlyList<string> argv, CancellationToken cancellationToken = default) =>
        ExecAsync(argv, DefaultExecTimeout, cancellationToken);

    /// <summary>Runs <paramref name="argv"/> in the guest (no shell); the guest kills it after <paramref name="timeout"/> (<see cref="Timeout.InfiniteTimeSpan"/>: never).</summary>
    public async Task<ExecResult> ExecAsync(IReadOnlyList<string> argv, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(argv);
        if (argv.Count == 0)
        {
            throw new ForkdException("EmptyCommand", ForkdErrorKind.InvalidArgument, "exec needs at least the program to run", Target);
        }

        var infinite = timeout == Timeout.InfiniteTimeSpan;
        var request = new JsonObject
        {
            ["action"] = "exec",
            ["args"] = new JsonArray([.. argv.Select(a => (JsonNode?)JsonValue.Create(a))]),
            ["timeout"] = infinite ? null : JsonValue.Create(timeout.TotalSeconds),
        };
        var clock = Stopwatch.StartNew();
        var reply = await SendAsync(request, infinite ? Timeout.InfiniteTimeSpan : timeout + ExecReplyGrace, cancellationToken).ConfigureAwait(false);
        var error = Text(reply, "error");
        return new ExecResult(Text(reply, "stdout") ?? "", Text(reply, "stderr") ?? "", Int(reply, "exit_code") ?? (error is null ? 0 : 1),
            error, Text(reply, "traceback"), clock.Elapsed);
    }

    /// <summary>Evaluates Python in the agent's persistent namespace: an expression gives its value, statements give None.</summary>
    public async Task<EvalResult> EvalAsync(string code, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(code);
        var wait = timeout ?? DefaultTimeout;
        var request = new JsonObject { ["action"] = "eval", ["code"] = code };
        if (wait != Timeout.InfiniteTimeSpan)
        {
            request["timeout"] = wait.TotalSeconds; // the warm-up bridge's own limit
        }

        var clock = Stopwatch.StartNew();
        var reply = await SendAsync(request, wait, cancellationToken).ConfigureAwait(false);
        var error = Text(reply, "error");
        return new EvalResult(Text(reply, "result"), Text(reply, "result_json"), error, Text(reply, "traceback"), Text(reply, "stack"),
            Int(reply, "exit_code") ?? (error is null ? 0 : 1), clock.Elapsed);
    }

    /// <summary>Sends one request object (an <c>id</c> is added) and returns the reply object.</summary>
    public async Task<JsonObject> SendAsync(JsonObject request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = $"{_idPrefix}-{Interlocked.Increment(ref _nextId)}";
        var message = (JsonObject)request.DeepClone();
        message["id"] = id;
        var waiter = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_closed is not null)
            {
                throw _closed;
            }

            _pending[id] = waiter;
            _order.Add(id);
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            limit.CancelAfter(timeout);
        }

        try
        {
            await WriteLineAsync(message.ToJsonString() + "\n", limit.Token).ConfigureAwait(false);
            return await waiter.Task.WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ForkdException("AgentTimeout", ForkdErrorKind.Timeout,
                $"the agent at {Target} did not answer '{Text(request, "action")}' within {timeout.TotalSeconds:0.#} s", Target)
            {
                Hint = "The guest may be busy, hung, or still booting; a longer timeout or Test-ForkdAgent shows which.",
            };
        }
        finally
        {
            lock (_gate)
            {
                _pending.Remove(id);
                _order.Remove(id);
            }
        }
    }

    private async Task WriteLineAsync(string line, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(line);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Not cancellable once started: half a line would corrupt the stream for every later request.
            await _output.WriteAsync(bytes, CancellationToken.None).ConfigureAwait(false);
            await _output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            var error = Unreachable($"cannot send to the agent at {Target}: {ex.Message}", Target, ex);
            Close(error);
            throw error;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        using var reader = new StreamReader(_input, new UTF8Encoding(false), false, 1 << 16, leaveOpen: true);
        try
        {
            while (true)
            {
                var line = await reader.ReadLineAsync(_shutdown.Token).ConfigureAwait(false);
                if (line is null)
                {
                    Close(Unreachable($"the agent at {Target} closed the connection", Target, null));
                    return;
                }

                if (!string.IsNullOrWhiteSpace(line))
                {
                    Dispatch(line);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
            Close(Unreachable($"lost the connection to the agent at {Target}: {ex.Message}", Target, ex));
        }
    }

    private void Dispatch(string line)
    {
        JsonObject? reply;
        try
        {
            reply = JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException)
        {
            reply = null;
        }

        TaskCompletionSource<JsonObject>? waiter = null;
        lock (_gate)
        {
            string? id = null;
            if (reply is not null && reply["id"] is JsonValue idValue && !idValue.TryGetValue(out id))
            {
                id = idValue.ToJsonString(); // a non-string id is never one of ours
            }

            if (id is null && _order.Count > 0)
            {
                id = _order[0]; // no id: forkd 0.1.3's agent answers in order
            }

            if (id is not null && _pending.Remove(id, out waiter))
            {
                _order.Remove(id);
            }
        }

        if (waiter is null)
        {
            Interlocked.Increment(ref _staleReplies);
        }
        else if (reply is null)
        {
            waiter.TrySetException(Protocol($"the agent at {Target} sent a line that is not a JSON object: {Truncate(line)}"));
        }
        else
        {
            waiter.TrySetResult(reply);
        }
    }

    private void Close(ForkdException error)
    {
        List<TaskCompletionSource<JsonObject>> waiting;
        lock (_gate)
        {
            _closed ??= error;
            waiting = [.. _pending.Values];
            _pending.Clear();
            _order.Clear();
        }

        foreach (var w in waiting)
        {
            w.TrySetException(error);
        }
    }

    private static string? Text(JsonObject reply, string key) => reply[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => other.ToJsonString(),
    };

    private static int? Int(JsonObject reply, string key) =>
        reply[key] is JsonValue v && v.TryGetValue<double>(out var d) ? (int)d : null;

    private static bool Bool(JsonObject reply, string key) =>
        reply[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "…" : text;

    private ForkdException Protocol(string message) => new("AgentProtocolError", ForkdErrorKind.ProtocolError, message, Target);

    private static ForkdException Unreachable(string message, object? target, Exception? inner) =>
        new("AgentUnreachable", ForkdErrorKind.ConnectionFailed, message, target, inner)
        {
            Hint = "Is the VM running and its agent started? The guest console log shows the agent's startup lines.",
        };

    public async ValueTask DisposeAsync()
    {
        Close(Unreachable($"the client for {Target} was disposed", Target, null));
        await _shutdown.CancelAsync().ConfigureAwait(false);
        if (_ownsStreams)
        {
            await _input.DisposeAsync().ConfigureAwait(false);
            if (!ReferenceEquals(_input, _output))
            {
                await _output.DisposeAsync().ConfigureAwait(false);
            }
        }

        try
        {
            await _reader.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
            // the reader ends by failing on the closed stream
        }

        _shutdown.Dispose();
        _writeLock.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
