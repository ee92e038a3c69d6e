using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Forkd.Core.Guest;
using Xunit.Abstractions;

namespace Forkd.Core.Tests.Guest;

/// <summary>Runs alone: it measures this process's memory while a hostile agent floods it.</summary>
[CollectionDefinition(nameof(AgentReplyFloodRunsAlone), DisableParallelization = true)]
public sealed class AgentReplyFloodRunsAlone;

/// <summary>
/// The host reads agent replies with a bounded reader: a peer on a real socket writing 1 GiB without a
/// newline (tests/guest/flood-agent.py) gets AgentReplyTooLarge, the connection dropped, and this process's
/// allocations and peak RSS during the flood stay under twice the limit.
/// </summary>
[Collection(nameof(AgentReplyFloodRunsAlone))]
public sealed class AgentReplyFloodTests(ITestOutputHelper output)
{
    private const long OneGiB = 1L << 30;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_1_GiB_reply_without_newline_is_AgentReplyTooLarge_with_host_memory_under_twice_the_cap(bool multiplexed)
    {
        await using var flood = await FloodAgent.StartAsync(OneGiB);
        var cap = AgentClient.DefaultMaxReplyBytes;
        await using var client = multiplexed ? await flood.ConnectStreamAsync() : await AgentClient.ConnectTcpAsync("127.0.0.1", flood.Port, TimeSpan.FromSeconds(5), default);
        for (var i = 0; i < 3; i++)
        {
            GC.Collect();
        }

        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        File.WriteAllText("/proc/self/clear_refs", "5"); // resets VmHWM (peak RSS) to the current RSS
        var rssBefore = StatusKiB("VmRSS");
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<ForkdException>(() => client.PingAsync(TimeSpan.FromSeconds(120)));

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        var peakGrowth = (StatusKiB("VmHWM") - rssBefore) * 1024;
        var report = await flood.NextReportAsync();
        output.WriteLine($"multiplexed={multiplexed}: {ex.ErrorId} after {clock.ElapsedMilliseconds} ms; allocated {allocated / 1048576.0:0.0} MiB, " +
            $"peak RSS growth {peakGrowth / 1048576.0:0.0} MiB, cap {cap / 1048576} MiB; flood agent: {report}");
        Assert.Equal("AgentReplyTooLarge", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.ProtocolError, ex.Kind);
        Assert.NotNull(ex.Hint);
        Assert.True(allocated < 2 * cap, $"allocated {allocated} bytes during the flood");
        Assert.True(peakGrowth < 2 * cap, $"peak RSS grew by {peakGrowth} bytes during the flood");
        // Dropped: the agent could not write its whole gigabyte.
        Assert.StartsWith("dropped-after ", report);
        Assert.True(long.Parse(report["dropped-after ".Length..], CultureInfo.InvariantCulture) < OneGiB / 2, report);
    }

    [Fact]
    public async Task A_raised_limit_accepts_what_the_default_refuses_and_the_limit_reaches_the_guest()
    {
        await using var agent = await AgentProcess.StartAsync();
        await using var small = await agent.ConnectAsync();
        small.MaxReplyBytes = 64 * 1024;
        await using var large = await agent.ConnectAsync();
        large.MaxReplyBytes = 4 * 1024 * 1024;

        var refused = await small.EvalAsync("'x' * (1 << 20)");
        var accepted = await large.EvalAsync("'x' * (1 << 20)");

        // Our agent knows the limit (max_reply) and answers an error instead of a line the host would refuse.
        Assert.StartsWith("ReplyTooLarge: ", refused.Error);
        Assert.Null(accepted.Error);
        Assert.Equal((1 << 20) + 2, accepted.Result!.Length);
    }

    [Fact]
    public async Task Exec_output_over_the_limit_is_cut_in_the_guest_and_the_cut_is_counted()
    {
        await using var agent = await AgentProcess.StartAsync();
        await using var client = await agent.ConnectAsync();
        client.MaxReplyBytes = 1024 * 1024;

        var result = await client.ExecAsync(["sh", "-c", "head -c 100000000 /dev/zero; echo done >&2"], TimeSpan.FromSeconds(60));
        var after = await client.EvalAsync("1 + 1");

        Assert.Null(result.Error);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(100_000_000, result.Stdout.Length + result.StdoutBytesDropped);
        Assert.True(result.Stdout.Length > 0 && result.StdoutBytesDropped > 0);
        Assert.Equal("done\n", result.Stderr);
        Assert.Equal("2", after.Result);
    }

    private static long StatusKiB(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    private sealed class FloodAgent : IAsyncDisposable
    {
        private readonly Process _process;

        private FloodAgent(Process process, int port)
        {
            _process = process;
            Port = port;
        }

        public int Port { get; }

        public static async Task<FloodAgent> StartAsync(long bytes)
        {
            var info = new ProcessStartInfo("python3") { RedirectStandardOutput = true, UseShellExecute = false };
            info.ArgumentList.Add("-u");
            info.ArgumentList.Add(Path.Combine(AgentProcess.RepoRoot, "tests", "guest", "flood-agent.py"));
            info.ArgumentList.Add(bytes.ToString(CultureInfo.InvariantCulture));
            var process = Process.Start(info)!;
            var port = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20));
            return new FloodAgent(process, int.Parse(port!, CultureInfo.InvariantCulture));
        }

        public async Task<AgentClient> ConnectStreamAsync()
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, Port);
            return new AgentClient(new NetworkStream(socket, ownsSocket: true), "flood-agent");
        }

        public async Task<string> NextReportAsync() =>
            (await _process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)))!;

        public async ValueTask DisposeAsync()
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
        }
    }
}
