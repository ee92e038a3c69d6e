using System.Net;
using System.Net.Sockets;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>Pull and push against a real HTTP server on 127.0.0.1.</summary>
public sealed class HubHttpTests : IDisposable
{
    private readonly HubSandbox _box = new();
    private readonly TestHttpServer _server = new();
    private readonly HubClient _client = new();

    public void Dispose()
    {
        _client.Dispose();
        _server.Dispose();
        _box.Dispose();
    }

    private async Task<byte[]> MakePack(string tag = "web")
    {
        HubSandbox.MakeSnapshot(_box.Paths, tag, pages: 500);
        var file = Path.Combine(_box.Root, tag + ".pack");
        await new PackWriter(_box.Paths).ExportAsync(tag, file, new PackOptions(), null, default);
        return File.ReadAllBytes(file);
    }

    private Task<SnapshotInfo> Pull(ForkdPaths target, Uri url) =>
        _client.PullAsync(new PackInstaller(target), url, new ImportOptions(), null, default);

    private static void AssertNothingInstalled(ForkdPaths paths)
    {
        Assert.True(!Directory.Exists(paths.SnapshotsDirectory) || Directory.GetFileSystemEntries(paths.SnapshotsDirectory).Length == 0);
        Assert.Empty(HubSandbox.Leftovers(paths));
    }

    [Fact]
    public async Task Pull_by_url_installs_the_pack()
    {
        _server.Files["/packs/web.forkd-snapshot.tar.zst"] = await MakePack();
        var other = _box.NewDataDir("pulled");
        var snap = await Pull(other, _server.Url("/packs/web.forkd-snapshot.tar.zst?X-Amz-Signature=secret"));
        Assert.Equal("web", snap.Tag);
        Assert.Equal(HubSandbox.Sha256(Path.Combine(_box.Paths.SnapshotDirectory("web"), "memory.bin")), HubSandbox.Sha256(Path.Combine(snap.Path, "memory.bin")));
        Assert.Empty(HubSandbox.Leftovers(other));
    }

    [Fact]
    public async Task Pull_short_form_resolves_against_the_hub_with_forkds_slug_rule()
    {
        _server.Files["/alice/py-agent_2.forkd-snapshot.tar.zst"] = await MakePack();
        var url = HubClient.ResolvePullTarget("alice/py.agent_2", _server.Url("/").ToString(), _ => null);
        Assert.Equal(_server.Url("/alice/py-agent-2.forkd-snapshot.tar.zst"), url);
        _server.Files["/alice/py-agent-2.forkd-snapshot.tar.zst"] = _server.Files["/alice/py-agent_2.forkd-snapshot.tar.zst"];
        var snap = await Pull(_box.NewDataDir("short"), url);
        Assert.Equal("web", snap.Tag); // the short form does not set the tag; the manifest does
    }

    [Fact]
    public async Task Pull_follows_a_redirect()
    {
        _server.Files["/real.tar.zst"] = await MakePack();
        _server.Redirects["/alias.tar.zst"] = _server.Url("/real.tar.zst").ToString();
        var snap = await Pull(_box.NewDataDir("redir"), _server.Url("/alias.tar.zst"));
        Assert.True(snap.IsComplete);
    }

    [Fact]
    public async Task Pull_404_says_the_tag_is_probably_not_published()
    {
        var other = _box.NewDataDir("p404");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Pull(other, _server.Url("/nobody/nothing.forkd-snapshot.tar.zst")));
        Assert.Equal("HubPackNotFound", ex.ErrorId);
        Assert.Contains("not published", ex.Message, StringComparison.Ordinal);
        AssertNothingInstalled(other);
    }

    [Fact]
    public async Task Pull_403_says_the_url_probably_expired_and_hides_the_signature()
    {
        _server.Statuses["/private.tar.zst"] = 403;
        var other = _box.NewDataDir("p403");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Pull(other, _server.Url("/private.tar.zst?X-Amz-Signature=topsecret")));
        Assert.Equal("HubAccessDenied", ex.ErrorId);
        Assert.Contains("expired", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("topsecret", ex.Message, StringComparison.Ordinal);
        AssertNothingInstalled(other);
    }

    [Fact]
    public async Task Pull_with_a_connection_dropped_mid_body_installs_nothing()
    {
        _server.Files["/flaky.tar.zst"] = await MakePack();
        _server.Drops["/flaky.tar.zst"] = true;
        var other = _box.NewDataDir("drop");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Pull(other, _server.Url("/flaky.tar.zst")));
        Assert.Equal("HubDownloadInterrupted", ex.ErrorId);
        AssertNothingInstalled(other);
    }

    [Fact]
    public async Task Pull_from_a_port_nobody_listens_on_says_unreachable()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var other = _box.NewDataDir("down");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => Pull(other, new Uri($"http://127.0.0.1:{port}/x.tar.zst")));
        Assert.Equal("HubUnreachable", ex.ErrorId);
        AssertNothingInstalled(other);
    }

    [Fact]
    public async Task Push_sends_content_length_and_no_content_type_and_the_body_imports()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "up", pages: 800);
        var result = await _client.PublishAsync(_box.Paths, "up", _server.Url("/bucket/up.tar.zst?sig=abc"), new PackOptions { Description = "pushed" }, null, default);
        var upload = Assert.Single(_server.Uploads);
        Assert.Equal(result.BytesSent, upload.ContentLength);
        Assert.Equal(upload.BodyBytes, upload.ContentLength);
        Assert.False(upload.HasContentType);
        Assert.False(upload.Chunked);
        Assert.Equal(200, result.StatusCode);
        Assert.DoesNotContain("sig=abc", result.Uri, StringComparison.Ordinal);

        var other = _box.NewDataDir("fromput");
        var snap = new PackInstaller(other).Import(new MemoryStream(upload.Body), "upload", null, new ImportOptions(), null, default);
        Assert.Equal("up", snap.Tag);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public async Task Push_follows_a_307_redirect_and_resends_the_body()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "re", pages: 100);
        _server.Redirects["/old"] = _server.Url("/new").ToString();
        var result = await _client.PublishAsync(_box.Paths, "re", _server.Url("/old"), new PackOptions(), null, default);
        var upload = Assert.Single(_server.Uploads);
        Assert.Equal("/new", upload.Path);
        Assert.Equal(result.BytesSent, upload.BodyBytes);
    }

    [Fact]
    public async Task Push_403_blames_the_presigned_url_and_removes_the_temp_pack()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "deny", pages: 50);
        _server.Statuses["/deny"] = 403;
        var ex = await Assert.ThrowsAsync<ForkdException>(() => _client.PublishAsync(_box.Paths, "deny", _server.Url("/deny"), new PackOptions(), null, default));
        Assert.Equal("HubAccessDenied", ex.ErrorId);
        Assert.Contains("presigned URL has probably expired", ex.Message, StringComparison.Ordinal);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public async Task Push_with_the_connection_dropped_mid_body_fails_and_removes_the_temp_pack()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "cut", pages: 3000);
        _server.Drops["/cut"] = true;
        var ex = await Assert.ThrowsAsync<ForkdException>(() => _client.PublishAsync(_box.Paths, "cut", _server.Url("/cut"), new PackOptions(), null, default));
        Assert.Equal("HubUploadInterrupted", ex.ErrorId);
        Assert.Empty(_server.Uploads);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Theory]
    [InlineData("https://example.com/p.tar.zst", null, null, "https://example.com/p.tar.zst")]
    [InlineData("alice/py", "https://hub.example/", null, "https://hub.example/alice/py.forkd-snapshot.tar.zst")]
    [InlineData("alice/py", null, "http://env.example/base", "http://env.example/base/alice/py.forkd-snapshot.tar.zst")]
    [InlineData("deeplethe/python-numpy", "https://h", "http://ignored", "https://h/deeplethe/python-numpy.forkd-snapshot.tar.zst")]
    [InlineData("a/../../b", "https://h", null, "https://h/a/--/--/b.forkd-snapshot.tar.zst")]
    public void Pull_targets_resolve_like_forkd(string target, string? hub, string? env, string expected) =>
        Assert.Equal(new Uri(expected), HubClient.ResolvePullTarget(target, hub, name => name == HubClient.HubVariable ? env : null));

    [Theory]
    [InlineData("alice/py", "HubNotConfigured")]
    [InlineData("justatag", "HubTargetInvalid")]
    [InlineData("has space/x", "HubTargetInvalid")]
    public void Bad_pull_targets_fail_clearly(string target, string errorId) =>
        Assert.Equal(errorId, Assert.Throws<ForkdException>(() => HubClient.ResolvePullTarget(target, null, _ => null)).ErrorId);
}
