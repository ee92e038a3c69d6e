namespace Forkd.Core.Hub;

/// <summary>How long pull and push wait on a server that does not move.</summary>
public sealed record HubTimeouts
{
    /// <summary>Default for <see cref="Connect"/>: 30 s.</summary>
    public static readonly TimeSpan DefaultConnect = TimeSpan.FromSeconds(30);

    /// <summary>Default for <see cref="Idle"/>: 60 s.</summary>
    public static readonly TimeSpan DefaultIdle = TimeSpan.FromSeconds(60);

    /// <summary>TCP (and TLS) connection set-up.</summary>
    public TimeSpan Connect { get; init; } = DefaultConnect;

    /// <summary>
    /// The longest stretch in which fewer than <see cref="MinimumBytes"/> move: waiting for the response headers,
    /// a body that stalls, or one that drips a byte a second.
    /// </summary>
    public TimeSpan Idle { get; init; } = DefaultIdle;

    /// <summary>Bytes that must move in each <see cref="Idle"/> window (1 KiB: well below any real link).</summary>
    public long MinimumBytes { get; init; } = 1024;

    /// <summary>Both limits set to <paramref name="seconds"/> (the cmdlets' <c>-TimeoutSec</c>).</summary>
    public static HubTimeouts FromSeconds(double seconds) =>
        seconds > 0
            ? new HubTimeouts { Connect = TimeSpan.FromSeconds(seconds), Idle = TimeSpan.FromSeconds(seconds) }
            : throw new ForkdException("InvalidTimeout", ForkdErrorKind.InvalidArgument, $"a timeout must be positive (got {seconds})", seconds);
}

/// <summary>
/// Watches one HTTP exchange: every byte moved (sent or received) is reported to it; when a whole
/// <see cref="HubTimeouts.Idle"/> window passes with fewer than <see cref="HubTimeouts.MinimumBytes"/>, it
/// cancels the request (which closes the socket and so unblocks any read or write) and remembers why,
/// so the caller can turn the cancellation into <c>HubTimeout</c> rather than a Ctrl+C.
/// </summary>
internal sealed class TransferWatchdog : IDisposable
{
    private readonly HubTimeouts _limits;
    private readonly CancellationTokenSource _cancel;
    private readonly Timer _timer;
    private readonly Action? _onTimeout;
    private long _bytes;
    private long _windowBytes;
    private long _windowStart = Environment.TickCount64;
    private int _fired;
    private int _waiting;

    public TransferWatchdog(HubTimeouts limits, CancellationToken outer, Action? onTimeout = null)
    {
        _limits = limits;
        _onTimeout = onTimeout;
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
        var tick = TimeSpan.FromMilliseconds(Math.Clamp(limits.Idle.TotalMilliseconds / 4, 50, 1000));
        _timer = new Timer(_ => Check(), null, tick, tick);
    }

    /// <summary>Cancelled by the caller's token or by a timeout.</summary>
    public CancellationToken Token => _cancel.Token;

    public bool TimedOut => Volatile.Read(ref _fired) == 1;

    /// <summary>What was being waited for, for the error message.</summary>
    public string Phase { get; set; } = "waiting for the server";

    public void Moved(long bytes) => Interlocked.Add(ref _bytes, bytes);

    /// <summary>
    /// For a download body: only time spent inside a read counts. While the import is busy elsewhere (writing,
    /// hashing a long hole) nothing is read, and that is our pace, not a stalled server.
    /// </summary>
    public bool OnlyWhileReading { get; set; }

    public void BeginRead() => Interlocked.Increment(ref _waiting);

    public void EndRead() => Interlocked.Decrement(ref _waiting);

    private void Check()
    {
        var now = Environment.TickCount64;
        if (OnlyWhileReading && Volatile.Read(ref _waiting) == 0)
        {
            _windowBytes = Interlocked.Read(ref _bytes);
            Volatile.Write(ref _windowStart, now);
            return;
        }

        if (now - Volatile.Read(ref _windowStart) < _limits.Idle.TotalMilliseconds)
        {
            return;
        }

        var total = Interlocked.Read(ref _bytes);
        if (total - _windowBytes >= _limits.MinimumBytes)
        {
            _windowBytes = total;
            Volatile.Write(ref _windowStart, now);
            return;
        }

        if (Interlocked.Exchange(ref _fired, 1) == 0)
        {
            try
            {
                _cancel.Cancel();
                _onTimeout?.Invoke();
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    public ForkdException Timeout(string method, string shown, Exception? inner) =>
        new("HubTimeout", ForkdErrorKind.Timeout,
            $"{method} {shown} timed out {Phase}: fewer than {_limits.MinimumBytes} bytes moved in {_limits.Idle.TotalSeconds:0.#} s " +
            $"({Interlocked.Read(ref _bytes)} bytes in all); the server stalled", shown, inner)
        {
            Hint = "The server or the network is stuck; try again later, or pass -TimeoutSec to wait longer. Nothing was installed.",
        };

    public void Dispose()
    {
        _timer.Dispose();
        _cancel.Dispose();
    }
}
