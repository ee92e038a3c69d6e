using System.Diagnostics;
using System.Globalization;
using Forkd.Core.Guest;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// Cancellation reaches the guest: when the host stops waiting (its token, or the timeout) the real agent
/// interrupts the running eval, drops a queued one, or kills an exec's whole process group, so the next
/// call is answered at once. Both transports: TCP (a cancel request on a second connection) and one
/// multiplexed stream (the agent's stdio, as virtio-serial carries it).
/// </summary>
public sealed class AgentCancelTests
{
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(1);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_timed_out_30_s_eval_is_interrupted_and_the_next_eval_answers_within_a_second(bool multiplexed)
    {
        await using var agent = await TestAgent.StartAsync(multiplexed);
        await agent.Client.EvalAsync("warm = 'kept'");

        var ex = await Assert.ThrowsAsync<ForkdException>(() => agent.Client.EvalAsync("import time; time.sleep(30)", TimeSpan.FromSeconds(2)));
        var clock = Stopwatch.StartNew();
        var next = await agent.Client.EvalAsync("warm", TimeSpan.FromSeconds(10));

        Assert.Equal("AgentTimeout", ex.ErrorId);
        Assert.Equal("'kept'", next.Result);
        Assert.True(clock.Elapsed < AtOnce, $"the next eval took {clock.ElapsedMilliseconds} ms");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cancelled_eval_is_interrupted_even_when_the_code_catches_exceptions(bool multiplexed)
    {
        await using var agent = await TestAgent.StartAsync(multiplexed);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            agent.Client.EvalAsync("import time\nwhile True:\n    try:\n        time.sleep(30)\n    except Exception:\n        pass", TimeSpan.FromSeconds(60), stop.Token));
        var clock = Stopwatch.StartNew();
        var next = await agent.Client.EvalAsync("6 * 7", TimeSpan.FromSeconds(10));

        Assert.Equal("42", next.Result);
        Assert.True(clock.Elapsed < AtOnce, $"the next eval took {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task Evals_run_one_at_a_time_and_time_queued_counts_so_a_queued_eval_that_times_out_never_runs()
    {
        await using var agent = await TestAgent.StartAsync(multiplexed: true);
        var slow = agent.Client.EvalAsync("import time; time.sleep(3); order = ['slow']", TimeSpan.FromSeconds(20));
        await Task.Delay(300);

        var queued = await Assert.ThrowsAsync<ForkdException>(() => agent.Client.EvalAsync("order.append('queued')", TimeSpan.FromSeconds(1)));
        await slow;
        var order = await agent.Client.EvalAsync("order");

        Assert.Equal("AgentTimeout", queued.ErrorId);
        Assert.Equal("['slow']", order.Result);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_exec_past_its_timeout_loses_its_whole_process_group_not_just_the_first_process(bool multiplexed)
    {
        await using var agent = await TestAgent.StartAsync(multiplexed);
        var pidFile = Path.Combine(Path.GetTempPath(), $"forkd-test-exec-{Guid.NewGuid():N}.pid");
        try
        {
            var result = await agent.Client.ExecAsync(["sh", "-c", $"sleep 60 & echo $! > {pidFile}; wait"], TimeSpan.FromSeconds(1));
            var background = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
            var clock = Stopwatch.StartNew();
            while (IsRunning(background) && clock.Elapsed < AtOnce)
            {
                await Task.Delay(20);
            }

            Assert.StartsWith("TimeoutExpired: ", result.Error);
            Assert.False(IsRunning(background), $"the exec's background process {background} survived");
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_cancelled_exec_is_killed_in_the_guest(bool multiplexed)
    {
        await using var agent = await TestAgent.StartAsync(multiplexed);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var pidFile = Path.Combine(Path.GetTempPath(), $"forkd-test-exec-{Guid.NewGuid():N}.pid");
        try
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                agent.Client.ExecAsync(["sh", "-c", $"echo $$ > {pidFile}; exec sleep 60"], TimeSpan.FromSeconds(60), stop.Token));
            var pid = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
            var clock = Stopwatch.StartNew();
            while (IsRunning(pid) && clock.Elapsed < AtOnce)
            {
                await Task.Delay(20);
            }

            Assert.False(IsRunning(pid), $"the cancelled exec {pid} is still running");
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    private static bool IsRunning(int pid) =>
        File.Exists($"/proc/{pid}/stat") && !File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].StartsWith('Z');
}

/// <summary>The real agent with a client: per-request TCP (forkd's rule), or multiplexed over its stdio.</summary>
internal sealed class TestAgent : IAsyncDisposable
{
    private readonly AgentProcess? _tcp;
    private readonly Process? _stdio;

    private TestAgent(AgentClient client, AgentProcess? tcp, Process? stdio)
    {
        Client = client;
        _tcp = tcp;
        _stdio = stdio;
    }

    public AgentClient Client { get; }

    public int ProcessId => _tcp?.ProcessId ?? _stdio!.Id;

    public static async Task<TestAgent> StartAsync(bool multiplexed)
    {
        if (!multiplexed)
        {
            var tcp = await AgentProcess.StartAsync();
            return new TestAgent(await tcp.ConnectAsync(), tcp, null);
        }

        var process = Process.Start(AgentProcess.StartInfo("--stdio", "--recipe-env", "/dev/null"))!;
        var client = new AgentClient(process.StandardOutput.BaseStream, process.StandardInput.BaseStream, "stdio");
        await client.PingAsync(TimeSpan.FromSeconds(20));
        return new TestAgent(client, null, process);
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        if (_tcp is not null)
        {
            await _tcp.DisposeAsync();
        }

        if (_stdio is not null)
        {
            _stdio.Kill(entireProcessTree: true);
            await _stdio.WaitForExitAsync();
            _stdio.Dispose();
        }
    }
}
