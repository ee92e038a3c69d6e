namespace Forkd.Core.Hub;

/// <summary>
/// Wraps a network body (download) or upload source: counts bytes for progress, and turns a connection
/// that drops mid-body into a <c>HubDownloadInterrupted</c> error that says how far it got. Seekable when
/// the inner stream is, so a redirected PUT can resend its body.
/// </summary>
internal sealed class TransferGuardStream(Stream inner, string shown, long? expected, ProgressThrottle? report = null,
    TransferWatchdog? watchdog = null, string method = "GET") : Stream
{
    private long _count;

    public override int Read(Span<byte> buffer)
    {
        int n;
        watchdog?.BeginRead();
        try
        {
            n = inner.Read(buffer);
        }
        catch (Exception ex) when (watchdog?.TimedOut == true)
        {
            throw watchdog.Timeout(method, shown, ex); // the watchdog closed the body under this read
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw Interrupted(ex);
        }
        finally
        {
            watchdog?.EndRead();
        }

        return Counted(n);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n;
        watchdog?.BeginRead();
        try
        {
            n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (watchdog?.TimedOut == true)
        {
            throw watchdog.Timeout(method, shown, ex);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw Interrupted(ex);
        }
        finally
        {
            watchdog?.EndRead();
        }

        return Counted(n);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Counted(int n)
    {
        _count += n;
        report?.Set(_count);
        watchdog?.Moved(n);
        if (n == 0 && watchdog?.TimedOut == true)
        {
            throw watchdog.Timeout(method, shown, null);
        }

        if (n == 0 && expected is { } total && _count < total)
        {
            throw Interrupted(null);
        }

        return n;
    }

    private ForkdException Interrupted(Exception? cause) =>
        new("HubDownloadInterrupted", ForkdErrorKind.ConnectionFailed,
            $"the transfer of {shown} stopped after {_count} of {(expected?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?")} bytes{(cause is null ? "" : $" ({cause.Message})")}",
            shown, cause)
        {
            Hint = "The connection dropped; nothing was installed. Try again.",
        };

    public override bool CanRead => true;

    public override bool CanSeek => inner.CanSeek;

    public override bool CanWrite => false;

    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.Position;
        set
        {
            inner.Position = value;
            _count = value;
        }
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        var p = inner.Seek(offset, origin);
        _count = p;
        return p;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
