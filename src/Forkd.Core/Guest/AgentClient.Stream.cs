using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace Forkd.Core.Guest;

/// <summary>The multiplexed stream: one reader loop, replies matched by id, a heartbeat while a request waits.</summary>
public sealed partial class AgentClient
{
    private async Task<JsonObject> SendOnStreamAsync(string id, JsonObject message, bool isControl, CancellationToken cancellationToken)
    {
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

        try
        {
            await WriteLineAsync(message.ToJsonString() + "\n", cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var beat = Task.Delay(HeartbeatInterval, cancellationToken);
                if (await Task.WhenAny(waiter.Task, beat).ConfigureAwait(false) == waiter.Task)
                {
                    return await waiter.Task.ConfigureAwait(false);
                }

                cancellationToken.ThrowIfCancellationRequested();
                if (!isControl)
                {
                    // A dead agent cannot close a virtio-serial stream (QEMU keeps the host side open): a ping shows
                    // whether the same agent is still there. The restarted one answers with a new generation.
                    StartHeartbeat();
                }
            }
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

    private void StartHeartbeat()
    {
        if (Interlocked.CompareExchange(ref _heartbeatRunning, 1, 0) != 0)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            var id = $"{_idPrefix}-{Interlocked.Increment(ref _nextId)}";
            try
            {
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await SendOnStreamAsync(id, new JsonObject { ["action"] = "ping", ["id"] = id }, true, limit.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ForkdException or OperationCanceledException)
            {
                // No answer yet (a restarting agent) or the stream closed: the waiting request learns it from Close.
            }
            finally
            {
                Volatile.Write(ref _heartbeatRunning, 0);
            }
        });
    }

    private async Task WriteLineAsync(string line, CancellationToken cancellationToken)
    {
        var bytes = Utf8(line);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Not cancellable once started: half a line would corrupt the stream for every later request.
            await _output!.WriteAsync(bytes, CancellationToken.None).ConfigureAwait(false);
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
        var reader = new BoundedLineReader(_input!, () => MaxReplyBytes, Target);
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

                if (line.AsSpan().IndexOfAnyExcept(" \t\r"u8) >= 0)
                {
                    Dispatch(line);
                }
            }
        }
        catch (ForkdException tooLarge)
        {
            // Over the limit: fail what waits and drop the connection, so the rest of that line is never read.
            Close(tooLarge);
            await DisposeStreamsAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or SocketException)
        {
            Close(Unreachable($"lost the connection to the agent at {Target}: {ex.Message}", Target, ex));
        }
    }

    private void Dispatch(byte[] line)
    {
        var reply = ParseObject(line);
        if (reply is not null && Text(reply, "forkd_generation") is { } generation)
        {
            lock (_gate)
            {
                _generation ??= generation;
            }

            if (!string.Equals(Generation, generation, StringComparison.Ordinal))
            {
                Close(WarmStateLost(generation));
                return;
            }
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
            waiter.TrySetException(Protocol($"the agent at {Target} sent a line that is not a JSON object: {Truncate(System.Text.Encoding.UTF8.GetString(line, 0, Math.Min(line.Length, 400)))}"));
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
}
