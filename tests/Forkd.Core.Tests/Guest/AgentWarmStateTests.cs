using System.Diagnostics;
using Forkd.Core.Guest;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// Warm state loss: the real agent behind a Unix socket that a supervisor keeps serving after the agent dies,
/// starting a new agent on the same stream, as forkd-init restarts the agent on the virtio-serial port (QEMU
/// keeps the host's socket open when the guest's agent dies, so the host never sees EOF). The host must tell
/// "restarted" from "slow" at once (the generation id), and keep saying WarmStateLost instead of answering
/// from a cold interpreter.
/// </summary>
public sealed class AgentWarmStateTests
{
    private static readonly TimeSpan Quickly = TimeSpan.FromSeconds(8);

    [Theory]
    [InlineData("import os; os._exit(1)")]
    [InlineData("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")]
    public async Task An_eval_that_kills_the_agent_is_WarmStateLost_at_once_and_so_is_every_later_call(string killer)
    {
        await using var supervised = await SupervisedAgent.StartAsync();
        await using var client = await supervised.ConnectAsync();
        await client.EvalAsync("warm = 42");
        var generation = client.Generation;

        var clock = Stopwatch.StartNew();
        var lost = await Assert.ThrowsAsync<ForkdException>(() => client.EvalAsync(killer, TimeSpan.FromSeconds(60)));
        var detectedAfter = clock.Elapsed;
        var later = await Assert.ThrowsAsync<ForkdException>(() => client.EvalAsync("warm"));

        Assert.Equal("WarmStateLost", lost.ErrorId);
        Assert.True(detectedAfter < Quickly, $"took {detectedAfter}");
        Assert.NotNull(lost.Hint);
        Assert.Equal("WarmStateLost", later.ErrorId);

        // A new connection that expects the recorded generation (as AgentCalls does for a child) is refused too.
        await client.DisposeAsync();
        await using var again = await supervised.ConnectAsync();
        again.Generation = generation;
        var fresh = await Assert.ThrowsAsync<ForkdException>(() => again.EvalAsync("warm"));
        Assert.Equal("WarmStateLost", fresh.ErrorId);
    }

    [Fact]
    public async Task An_exec_that_kills_the_agent_with_kill_9_is_WarmStateLost()
    {
        await using var supervised = await SupervisedAgent.StartAsync();
        await using var client = await supervised.ConnectAsync();
        await client.PingAsync();

        var clock = Stopwatch.StartNew();
        var lost = await Assert.ThrowsAsync<ForkdException>(() => client.ExecAsync(["sh", "-c", "kill -9 $PPID; sleep 30"], TimeSpan.FromSeconds(60)));

        Assert.Equal("WarmStateLost", lost.ErrorId);
        Assert.True(clock.Elapsed < Quickly, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_slow_eval_of_the_same_agent_is_not_mistaken_for_a_restart()
    {
        await using var supervised = await SupervisedAgent.StartAsync();
        await using var client = await supervised.ConnectAsync();
        await client.EvalAsync("warm = 42");

        // Several heartbeats pass while it runs; each is answered by the same generation.
        var result = await client.EvalAsync("import time; time.sleep(3.5); warm", TimeSpan.FromSeconds(30));

        Assert.Equal("42", result.Result);
    }

    [Fact]
    public async Task Over_TCP_an_agent_that_dies_with_the_request_is_reported_at_once_not_at_the_timeout()
    {
        await using var agent = await AgentProcess.StartAsync();
        await using var client = await agent.ConnectAsync();
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<ForkdException>(() => client.EvalAsync("import os; os._exit(1)", TimeSpan.FromSeconds(60)));

        Assert.Equal("AgentUnreachable", ex.ErrorId);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    /// <summary>A Unix socket whose one connection is served by the real agent (--stdio), restarted whenever it exits.</summary>
    private sealed class SupervisedAgent : IAsyncDisposable
    {
        private readonly Process _supervisor;

        private SupervisedAgent(Process supervisor, string path)
        {
            _supervisor = supervisor;
            Path = path;
        }

        public string Path { get; }

        public static async Task<SupervisedAgent> StartAsync()
        {
            var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"forkd-test-warm-{Guid.NewGuid():N}"[..30] + ".sock");
            var script = $$"""
                import socket, subprocess, sys, time
                s = socket.socket(socket.AF_UNIX); s.bind("{{path}}"); s.listen(4)
                while True:
                    c, _ = s.accept()
                    while True:   # like forkd-init: a dead agent is restarted on the same stream
                        done = subprocess.run([sys.executable, "-u", "{{AgentProcess.Sources.AgentPath}}", "--stdio", "--recipe-env", "/dev/null"],
                                              stdin=c.fileno(), stdout=c.fileno(), stderr=subprocess.DEVNULL)
                        if done.returncode == 0:   # the host closed its end (EOF): serve the next connection
                            c.close()
                            break
                        time.sleep(0.2)
                """;
            var info = new ProcessStartInfo("python3") { UseShellExecute = false };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add(script);
            var supervisor = Process.Start(info)!;
            var clock = Stopwatch.StartNew();
            while (!File.Exists(path) && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(20);
            }

            return new SupervisedAgent(supervisor, path);
        }

        public Task<AgentClient> ConnectAsync() => AgentClient.ConnectUnixAsync(Path, TimeSpan.FromSeconds(10), default);

        public async ValueTask DisposeAsync()
        {
            _supervisor.Kill(entireProcessTree: true);
            await _supervisor.WaitForExitAsync();
            _supervisor.Dispose();
            File.Delete(Path);
        }
    }
}
