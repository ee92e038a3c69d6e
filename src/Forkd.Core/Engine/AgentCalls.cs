using Forkd.Core.Store;
using System.Diagnostics;
using System.Net.Sockets;
using Forkd.Core.Guest;

namespace Forkd.Core.Engine;

/// <summary>The answer of one child to <c>Invoke-ForkdEval</c>.</summary>
public sealed record ForkdEvalResult
{
    public required string ChildId { get; init; }

    /// <summary>The value as a .NET object (decoded from the guest's JSON), else the repr string.</summary>
    public object? Value { get; init; }

    /// <summary>Python's <c>repr()</c> of the value.</summary>
    public string? Repr { get; init; }

    /// <summary>The guest's exception (<c>Type: message</c>), or null on success.</summary>
    public string? Error { get; init; }

    public string? Traceback { get; init; }

    public double DurationMs { get; init; }

    /// <summary>The same as <see cref="DurationMs"/>, as a TimeSpan (the module's one convention for durations).</summary>
    public TimeSpan Duration => TimeSpan.FromMilliseconds(DurationMs);

    public bool Succeeded => Error is null;
}

/// <summary>The answer of one child to <c>Invoke-ForkdExec</c>.</summary>
public sealed record ForkdExecResult
{
    public required string ChildId { get; init; }

    public string Stdout { get; init; } = "";

    public string Stderr { get; init; } = "";

    public int ExitCode { get; init; }

    /// <summary>Set when the agent could not run the command (not found, timed out).</summary>
    public string? Error { get; init; }

    public double DurationMs { get; init; }

    /// <summary>The same as <see cref="DurationMs"/>, as a TimeSpan (the module's one convention for durations).</summary>
    public TimeSpan Duration => TimeSpan.FromMilliseconds(DurationMs);

    /// <summary>Bytes of stdout the guest dropped to keep the reply under -MaxReplyBytes (0: all of it is here).</summary>
    public long StdoutBytesDropped { get; init; }

    /// <summary>Bytes of stderr the guest dropped to keep the reply under -MaxReplyBytes.</summary>
    public long StderrBytesDropped { get; init; }

    public bool Succeeded => Error is null && ExitCode == 0;
}

/// <summary>The answer of one child to <c>Test-ForkdAgent</c>.</summary>
public sealed record ForkdAgentStatus
{
    public required string ChildId { get; init; }

    public bool Responding { get; init; }

    public double RoundTripMs { get; init; }

    /// <summary><see cref="RoundTripMs"/> as a TimeSpan; null when the agent did not answer (no measurement).</summary>
    public TimeSpan? RoundTrip => Responding ? TimeSpan.FromMilliseconds(RoundTripMs) : null;

    /// <summary>True when an agent answers but it is not the one the child was forked with (it restarted; the warm state is gone).</summary>
    public bool WarmStateLost { get; init; }

    public string? Error { get; init; }
}

/// <summary>
/// One request to one child's agent: connect, call, close. Failures become <see cref="ForkdException"/>s for that child.
/// The timeout covers everything from the connect on, including time queued behind other evals on that child.
/// Every reply is checked against the agent generation recorded at fork time (<c>WarmStateLost</c>), and an eval or
/// exec that is cancelled or times out is cancelled in the guest too.
/// </summary>
public static class AgentCalls
{
    public static TimeSpan ConnectTimeout { get; } = TimeSpan.FromSeconds(5);

    public static Task<ForkdEvalResult> EvalAsync(ChildRegistry registry, ForkdChild child, string code, TimeSpan timeout, CancellationToken cancellationToken) =>
        EvalAsync(registry, child, code, timeout, AgentClient.DefaultMaxReplyBytes, cancellationToken);

    public static Task<ForkdEvalResult> EvalAsync(ChildRegistry registry, ForkdChild child, string code, TimeSpan timeout, long maxReplyBytes,
        CancellationToken cancellationToken) =>
        CallAsync(registry, child, timeout, maxReplyBytes, async (agent, ct) =>
        {
            var clock = Stopwatch.StartNew();
            var r = await agent.EvalAsync(code, timeout, ct).ConfigureAwait(false);
            return new ForkdEvalResult
            {
                ChildId = child.Id,
                Value = r.Error is not null ? null : r.ResultJson is not null ? GuestValue.Decode(r.ResultJson) : r.Result,
                Repr = r.Result,
                Error = r.Error,
                // Python errors carry a traceback; JavaScript ones (Node and browser recipes) the JS stack.
                Traceback = r.Traceback ?? (string.IsNullOrEmpty(r.Stack) ? null : r.Stack),
                DurationMs = clock.Elapsed.TotalMilliseconds,
            };
        }, cancellationToken);

    public static Task<ForkdExecResult> ExecAsync(ChildRegistry registry, ForkdChild child, IReadOnlyList<string> argv, TimeSpan timeout,
        CancellationToken cancellationToken) =>
        ExecAsync(registry, child, argv, timeout, AgentClient.DefaultMaxReplyBytes, cancellationToken);

    public static Task<ForkdExecResult> ExecAsync(ChildRegistry registry, ForkdChild child, IReadOnlyList<string> argv, TimeSpan timeout,
        long maxReplyBytes, CancellationToken cancellationToken) =>
        CallAsync(registry, child, timeout + TimeSpan.FromSeconds(5), maxReplyBytes, async (agent, ct) =>
        {
            var clock = Stopwatch.StartNew();
            var r = await agent.ExecAsync(argv, timeout, ct).ConfigureAwait(false);
            return new ForkdExecResult
            {
                ChildId = child.Id,
                Stdout = r.Stdout,
                Stderr = r.Stderr,
                ExitCode = r.ExitCode,
                Error = r.Error,
                DurationMs = clock.Elapsed.TotalMilliseconds,
                StdoutBytesDropped = r.StdoutBytesDropped,
                StderrBytesDropped = r.StderrBytesDropped,
            };
        }, cancellationToken);

    public static Task<ForkdAgentStatus> PingAsync(ChildRegistry registry, ForkdChild child, TimeSpan timeout, CancellationToken cancellationToken) =>
        PingAsync(registry, child, timeout, AgentClient.DefaultMaxReplyBytes, cancellationToken);

    public static Task<ForkdAgentStatus> PingAsync(ChildRegistry registry, ForkdChild child, TimeSpan timeout, long maxReplyBytes,
        CancellationToken cancellationToken) =>
        CallAsync(registry, child, timeout, maxReplyBytes, async (agent, ct) =>
        {
            var clock = Stopwatch.StartNew();
            await agent.PingAsync(timeout, ct).ConfigureAwait(false);
            return new ForkdAgentStatus { ChildId = child.Id, Responding = true, RoundTripMs = clock.Elapsed.TotalMilliseconds };
        }, cancellationToken);

    private static async Task<T> CallAsync<T>(ChildRegistry registry, ForkdChild child, TimeSpan timeout, long maxReplyBytes,
        Func<AgentClient, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(child);
        if (maxReplyBytes < 1024)
        {
            throw new ForkdException("MaxReplyBytesTooSmall", ForkdErrorKind.InvalidArgument, $"the reply limit must be at least 1024 bytes, not {maxReplyBytes}", child.Id);
        }

        if (!registry.IsOurProcess(child.ProcessId, child.WorkDirectory))
        {
            throw new ForkdException("ChildExited", ForkdErrorKind.NotFound, $"child {child.Id} is not running (its VMM process {child.ProcessId} is gone)", child.Id)
            { Hint = $"Stop-ForkdChild -Id {child.Id} removes what is left of it." };
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var agent = await AgentWait.ConnectAsync(child.Agent, ConnectTimeout, deadline.Token).ConfigureAwait(false);
            await using (agent.ConfigureAwait(false))
            {
                agent.MaxReplyBytes = maxReplyBytes;
                agent.Generation = child.AgentGeneration;
                return await call(agent, deadline.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ForkdException("AgentTimeout", ForkdErrorKind.Timeout,
                $"child {child.Id} did not answer within {timeout.TotalSeconds:0.#} s (an eval or exec still running was told to stop)", child.Id)
            {
                Hint = "Evals on one child run one at a time and the time queued behind others counts; raise -TimeoutSec for long work.",
            };
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            throw new ForkdException("AgentUnreachable", ForkdErrorKind.ConnectionFailed,
                $"cannot talk to the agent of child {child.Id} at {child.Agent}: {ex.Message}", child.Id, ex);
        }
    }
}
