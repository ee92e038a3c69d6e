using System.Diagnostics;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>Pull and push against a real server on 127.0.0.1 that stalls or drips: HubTimeout, nothing installed, no leftovers.</summary>
public sealed class HubTimeoutTests : IDisposable
{
    private static readonly HubTimeouts Short = new() { Connect = TimeSpan.FromSeconds(2), Idle = TimeSpan.FromSeconds(2) };
    private readonly HubSandbox _box = new();
    private readonly TestHttpServer _server = new();
    private readonly HubClient _client = new(Short);

    public void Dispose()
    {
        _client.Dispose();
        _server.Dispose();
        _box.Dispose();
    }

    private async Task<byte[]> MakePack(string tag, int pages)
    {
        HubSandbox.MakeSnapshot(_box.Paths, tag, pages);
        var file = Path.Combine(_box.Root, tag + ".pack");
        await new PackWriter(_box.Paths).ExportAsync(tag, file, new PackOptions(), null, default);
        return File.ReadAllBytes(file);
    }

    /// <summary>Without a timeout these calls never return; fail the test instead of hanging the run.</summary>
    private static async Task<T> Bounded<T>(Task<T> task)
    {
        if (await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(60))) != task)
        {
            throw new Xunit.Sdk.XunitException("the call was still waiting after 60 s: no timeout fired");
        }

        return await task;
    }

    [Theory]
    [InlineData(Stall.BeforeHeaders)]
    [InlineData(Stall.AfterHeaders)]
    [InlineData(Stall.Drip)]
    public async Task A_pull_from_a_stalled_or_dripping_server_times_out(Stall stall)
    {
        _server.Files["/slow.tar.zst"] = await MakePack("slow", 2000);
        _server.Stalls["/slow.tar.zst"] = stall;
        var other = _box.NewDataDir("pulled");
        var clock = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Bounded(
            _client.PullAsync(new PackInstaller(other), _server.Url("/slow.tar.zst"), new ImportOptions(), null, default)));
        Assert.Equal("HubTimeout", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.Timeout, ex.Kind);
        Assert.Contains("-TimeoutSec", ex.Hint, StringComparison.Ordinal);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 15);
        Assert.True(!Directory.Exists(other.SnapshotsDirectory) || Directory.GetFileSystemEntries(other.SnapshotsDirectory).Length == 0);
        Assert.Empty(HubSandbox.Leftovers(other));
    }

    [Fact]
    public async Task A_push_to_a_server_that_never_reads_the_body_times_out_and_removes_the_temp_pack()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "stuck", pages: 20000); // ~80 MiB of pages: more than the socket buffers hold
        _server.Stalls["/stuck"] = Stall.NeverReadBody;
        var clock = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Bounded(
            _client.PublishAsync(_box.Paths, "stuck", _server.Url("/stuck"), new PackOptions(), null, default)));
        Assert.Equal("HubTimeout", ex.ErrorId);
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.5, 60);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public async Task A_slow_but_moving_download_is_not_cut_off()
    {
        // The watchdog needs 1 KiB per window, not the whole body: a healthy pull with a short window still works.
        _server.Files["/ok.tar.zst"] = await MakePack("ok", 300);
        var snap = await _client.PullAsync(new PackInstaller(_box.NewDataDir("ok")), _server.Url("/ok.tar.zst"), new ImportOptions(), null, default);
        Assert.True(snap.IsComplete);
    }

    /// <summary>Blocks the importing thread on its first progress report, as a slow disk or a long hole would.</summary>
    private sealed class SlowConsumer : IProgress<PackProgress>
    {
        private int _calls;

        public void Report(PackProgress value)
        {
            if (value.Bytes > 0 && value.Status != "done" && Interlocked.Increment(ref _calls) == 1)
            {
                Thread.Sleep(TimeSpan.FromSeconds(5));
            }
        }
    }

    [Fact]
    public async Task A_download_paused_by_our_own_slow_import_is_not_a_server_stall()
    {
        _server.Files["/busy.tar.zst"] = await MakePack("busy", 20000);
        var snap = await Bounded(_client.PullAsync(new PackInstaller(_box.NewDataDir("busy")), _server.Url("/busy.tar.zst"), new ImportOptions(), new SlowConsumer(), default));
        Assert.True(snap.IsComplete);
    }

    [Fact]
    public void Timeouts_have_documented_defaults_and_a_seconds_form()
    {
        var d = new HubTimeouts();
        Assert.Equal(TimeSpan.FromSeconds(30), d.Connect);
        Assert.Equal(TimeSpan.FromSeconds(60), d.Idle);
        Assert.Equal(TimeSpan.FromSeconds(5), HubTimeouts.FromSeconds(5).Idle);
        Assert.Equal("InvalidTimeout", Assert.Throws<ForkdException>(() => HubTimeouts.FromSeconds(0)).ErrorId);
    }
}
