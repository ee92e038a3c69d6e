using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Guest;

/// <summary>
/// Host side of the guest agent protocol. Two ways to carry it: one multiplexed stream (QEMU's
/// virtio-serial chardev socket, vsock, a process's stdio) where requests carry ids and replies are
/// matched by id, so a stale reply (to a request that timed out, or one a parent wrote just before its
/// snapshot) is dropped; or TCP with one request per connection, as forkd's agent serves it. Replies are
/// read with a size limit (<see cref="MaxReplyBytes"/>). Every reply of a Forkd agent names its
/// generation; a different one than expected means the agent restarted and its warm state is gone.
/// Thread-safe; requests may overlap.
/// </summary>
public sealed partial class AgentClient : IAsyncDisposable, IDisposable
{
    public static readonly TimeSpan DefaultExecTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The default limit for one reply line: 16 MiB.</summary>
    public const long DefaultMaxReplyBytes = 16L * 1024 * 1024;

    /// <summary>Extra time the host waits beyond an exec's own timeout (the guest must still kill the process and reply).</summary>
    private static readonly TimeSpan ExecReplyGrace = TimeSpan.FromSeconds(15);

    /// <summary>How long a cancel request may take to reach the guest before the caller gets its answer anyway.</summary>
    private static readonly TimeSpan CancelDelivery = TimeSpan.FromSeconds(2);

    private readonly Stream? _input;
    private readonly Stream? _output;
    private readonly Func<CancellationToken, Task<Socket>>? _connect;
    private readonly bool _ownsStreams;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskCompletionSource<JsonObject>> _pending = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly string _idPrefix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
    private readonly CancellationTokenSource _shutdown = new();
    private readonly Task _reader = Task.CompletedTask;
    private long _nextId;
    private long _staleReplies;
    private long _maxReplyBytes = DefaultMaxReplyBytes;
    private string? _generation;
    private int _heartbeatRunning;
    private int _disposed;
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

    /// <summary>One connection per request (forkd's TCP rule): <paramref name="connect"/> opens each one.</summary>
    private AgentClient(Func<CancellationToken, Task<Socket>> connect, string target)
    {
        _connect = connect;
        Target = target;
    }

    /// <summary>What this client talks to, for messages (<c>unix:/path</c>, <c>tcp:host:port</c>).</summary>
    public string Target { get; }

    /// <summary>How long <see cref="PingAsync"/> and <see cref="EvalAsync"/> wait by default.</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>While a request waits this long on a multiplexed stream, a ping checks that the same agent is still there.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Replies that matched no waiting request and were dropped.</summary>
    public long StaleReplies => Interlocked.Read(ref _staleReplies);

    /// <summary>The longest reply line accepted (also sent to the agent, which cuts exec output to fit).</summary>
    public long MaxReplyBytes
    {
        get => Interlocked.Read(ref _maxReplyBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1024);
            Interlocked.Exchange(ref _maxReplyBytes, value);
        }
    }

    /// <summary>
    /// The agent generation this client expects: set it to the one recorded when a child was forked; when
    /// unset, the first reply that names one fixes it. A reply from another generation is <c>WarmStateLost</c>.
    /// </summary>
    public string? Generation
    {
        get
        {
            lock (_gate)
            {
                return _generation;
            }
        }

        set
        {
            lock (_gate)
            {
                _generation = value;
            }
        }
    }

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
            Bool(reply, "warmup_ready"), Text(reply, "python_version"), clock.Elapsed)
        {
            Generation = Text(reply, "forkd_generation"),
            WarmupState = Text(reply, "forkd_warmup"),
        };
    }

    /// <summary>Runs <paramref name="argv"/> in the guest (no shell) with the default 30 s limit.</summary>
    public Task<ExecResult> ExecAsync(IReadOnlyList<string> argv, CancellationToken cancellationToken = default) =>
        ExecAsync(argv, DefaultExecTimeout, cancellationToken);

    /// <summary>Runs <paramref name="argv"/> in the guest (no shell); the guest kills its process group after <paramref name="timeout"/> (<see cref="Timeout.InfiniteTimeSpan"/>: never).</summary>
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
        var dropped = reply["forkd_truncated"] as JsonObject;
        return new ExecResult(Text(reply, "stdout") ?? "", Text(reply, "stderr") ?? "", Int(reply, "exit_code") ?? (error is null ? 0 : 1),
            error, Text(reply, "traceback"), clock.Elapsed)
        {
            StdoutBytesDropped = dropped is null ? 0 : Long(dropped, "stdout"),
            StderrBytesDropped = dropped is null ? 0 : Long(dropped, "stderr"),
        };
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
        // Our agent's native value (forkd_value, any JSON) first; forkd's Node bridge sends result_json (JSON text).
        var json = reply.TryGetPropertyValue("forkd_value", out var native) ? native?.ToJsonString() ?? "null" : Text(reply, "result_json");
        return new EvalResult(Text(reply, "result"), json, error, Text(reply, "traceback"), Text(reply, "stack"),
            Int(reply, "exit_code") ?? (error is null ? 0 : 1), clock.Elapsed);
    }

    /// <summary>
    /// Sends one request object (an <c>id</c> and the reply limit are added) and returns the reply object.
    /// When the wait ends early (cancellation, timeout) an eval or exec is cancelled in the guest too.
    /// </summary>
    public async Task<JsonObject> SendAsync(JsonObject request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var id = $"{_idPrefix}-{Interlocked.Increment(ref _nextId)}";
        var message = (JsonObject)request.DeepClone();
        message["id"] = id;
        var action = Text(request, "action");
        if (action != "ping")
        {
            // A pong is small; a ping of exactly {action, id} takes the agent's fast path (forkd-agent.py fast_ping).
            message["max_reply"] = MaxReplyBytes;
        }

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            limit.CancelAfter(timeout);
        }

        try
        {
            var reply = _connect is null
                ? await SendOnStreamAsync(id, message, action == "ping", limit.Token).ConfigureAwait(false)
                : await SendOnNewConnectionAsync(message, limit.Token).ConfigureAwait(false);
            Observe(reply);
            return reply;
        }
        catch (OperationCanceledException) when (action is "eval" or "exec")
        {
            await CancelInGuestAsync(id).ConfigureAwait(false);
            if (cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw TimedOut(action, timeout);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw TimedOut(action, timeout);
        }
    }

    private ForkdException TimedOut(string? action, TimeSpan timeout) =>
        new("AgentTimeout", ForkdErrorKind.Timeout,
            $"the agent at {Target} did not answer '{action}' within {timeout.TotalSeconds:0.#} s{(action is "eval" or "exec" ? "; it was told to stop" : "")}", Target)
        {
            Hint = "The guest may be busy, hung, or still booting; a longer timeout or Test-ForkdAgent shows which.",
        };

    /// <summary>Best effort, bounded: the guest interrupts the eval (or kills the exec's process group) with that id.</summary>
    private async Task CancelInGuestAsync(string id)
    {
        using var limit = new CancellationTokenSource(CancelDelivery);
        var cancel = new JsonObject { ["action"] = "cancel", ["target"] = id, ["id"] = $"{id}-cancel" };
        try
        {
            _ = _connect is null
                ? await SendOnStreamAsync($"{id}-cancel", cancel, true, limit.Token).ConfigureAwait(false)
                : await SendOnNewConnectionAsync(cancel, limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ForkdException or OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // The guest is gone or unreachable: nothing left to stop.
        }
    }

    /// <summary>A reply names the agent's generation; another than the expected one means a restarted agent.</summary>
    private void Observe(JsonObject reply)
    {
        var generation = Text(reply, "forkd_generation");
        if (generation is null)
        {
            return; // forkd 0.1.3's agent has none
        }

        lock (_gate)
        {
            _generation ??= generation;
            if (string.Equals(_generation, generation, StringComparison.Ordinal))
            {
                return;
            }
        }

        throw WarmStateLost(generation);
    }

    private ForkdException WarmStateLost(string generation) =>
        new("WarmStateLost", ForkdErrorKind.Failed,
            $"the agent at {Target} restarted (generation {generation}, expected {Generation}): the warm state inherited from the snapshot is gone", Target)
        {
            Hint = "Something in the guest killed the agent (the evaluated code, an exec, or the guest's OOM killer; the child's serial.log says which). Stop this child and fork a new one.",
        };

    private static string? Text(JsonObject reply, string key) => reply[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => other.ToJsonString(),
    };

    private static int? Int(JsonObject reply, string key) =>
        reply[key] is JsonValue v && v.TryGetValue<double>(out var d) ? (int)d : null;

    private static long Long(JsonObject reply, string key) =>
        reply[key] is JsonValue v && v.TryGetValue<double>(out var d) ? (long)d : 0;

    private static bool Bool(JsonObject reply, string key) =>
        reply[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "…" : text;

    private ForkdException Protocol(string message) => new("AgentProtocolError", ForkdErrorKind.ProtocolError, message, Target);

    private static ForkdException Unreachable(string message, object? target, Exception? inner) =>
        new("AgentUnreachable", ForkdErrorKind.ConnectionFailed, message, target, inner)
        {
            Hint = "Is the VM running and its agent started? The guest console log shows the agent's startup lines.",
        };

    private static JsonObject? ParseObject(byte[] line)
    {
        try
        {
            return JsonNode.Parse(line) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Close(Unreachable($"the client for {Target} was disposed", Target, null));
        await _shutdown.CancelAsync().ConfigureAwait(false);
        await DisposeStreamsAsync().ConfigureAwait(false);
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

    private async Task DisposeStreamsAsync()
    {
        if (_ownsStreams && _input is not null)
        {
            await _input.DisposeAsync().ConfigureAwait(false);
            if (_output is not null && !ReferenceEquals(_input, _output))
            {
                await _output.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static byte[] Utf8(string line) => Encoding.UTF8.GetBytes(line);
}
