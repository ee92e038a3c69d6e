using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Engine;

/// <summary>QMP framing against a scripted peer on a real Unix socket, and against a real QEMU.</summary>
[Trait(Tiers.Name, Tiers.Full)]
public sealed class QmpClientTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("forkd-qmptest-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A QMP peer that sends the greeting, then answers each request line with the scripted lines.</summary>
    private async Task<QmpClient> ConnectToScriptedPeerAsync(Func<JsonObject, IEnumerable<string>> answer, List<JsonObject> received)
    {
        var path = Path.Combine(_dir, "qmp.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        _ = Task.Run(async () =>
        {
            using var conn = await listener.AcceptAsync();
            listener.Dispose();
            await using var stream = new NetworkStream(conn, true);
            using var reader = new StreamReader(stream);
            async Task Send(string line) => await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"));
            await Send("""{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "test"}, "capabilities": []}}""");
            while (await reader.ReadLineAsync() is { } line)
            {
                var request = JsonNode.Parse(line)!.AsObject();
                lock (received)
                {
                    received.Add(request);
                }

                foreach (var reply in answer(request))
                {
                    await Send(reply.Replace("$ID", request["id"]!.GetValue<string>(), StringComparison.Ordinal));
                }
            }
        });
        return await QmpClient.ConnectAsync(path, TimeSpan.FromSeconds(5), CancellationToken.None);
    }

    [Fact]
    public async Task Handshake_negotiates_capabilities_and_reads_the_version()
    {
        var received = new List<JsonObject>();
        await using var qmp = await ConnectToScriptedPeerAsync(_ => ["""{"return": {}, "id": "$ID"}"""], received);
        Assert.Equal("qmp_capabilities", received[0]["execute"]!.GetValue<string>());
        Assert.Equal(7, qmp.Version!["qemu"]!["major"]!.GetValue<int>());
    }

    [Fact]
    public async Task Events_before_the_reply_are_kept_and_the_reply_is_matched_by_id()
    {
        var received = new List<JsonObject>();
        await using var qmp = await ConnectToScriptedPeerAsync(r => r["execute"]!.GetValue<string>() == "stop"
            ?
            [
                """{"return": {"status": "stale"}, "id": "someone-else"}""",
                """{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}""",
                """{"return": {"status": "paused"}, "id": "$ID"}""",
            ]
            : ["""{"return": {}, "id": "$ID"}"""], received);
        var result = await qmp.ExecuteAsync("stop", null, CancellationToken.None);
        Assert.Equal("paused", result!["status"]!.GetValue<string>());
        Assert.Contains(qmp.Events, e => e["event"]!.GetValue<string>() == "STOP");
        Assert.NotEqual(received[0]["id"]!.GetValue<string>(), received[1]["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_error_reply_throws_QmpCommandFailed_with_the_description()
    {
        var received = new List<JsonObject>();
        await using var qmp = await ConnectToScriptedPeerAsync(r => r["execute"]!.GetValue<string>() == "migrate"
            ? ["""{"error": {"class": "GenericError", "desc": "disk full"}, "id": "$ID"}"""]
            : ["""{"return": {}, "id": "$ID"}"""], received);
        var ex = await Assert.ThrowsAsync<ForkdException>(() => qmp.ExecuteAsync("migrate", new JsonObject { ["uri"] = "exec:cat" }, CancellationToken.None));
        Assert.Equal("QmpCommandFailed", ex.ErrorId);
        Assert.Contains("disk full", ex.Message, StringComparison.Ordinal);
        Assert.Equal("exec:cat", received[1]["arguments"]!["uri"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_peer_that_hangs_up_gives_QmpDisconnected()
    {
        var received = new List<JsonObject>();
        await using var qmp = await ConnectToScriptedPeerAsync(r => r["execute"]!.GetValue<string>() == "quit"
            ? throw new IOException("peer closes")
            : ["""{"return": {}, "id": "$ID"}"""], received);
        var ex = await Assert.ThrowsAsync<ForkdException>(() => qmp.ExecuteAsync("quit", null, CancellationToken.None));
        Assert.Equal("QmpDisconnected", ex.ErrorId);
    }

    [Fact]
    public async Task Connect_to_a_socket_nobody_serves_times_out_with_QmpConnectTimeout()
    {
        var ex = await Assert.ThrowsAsync<ForkdException>(() =>
            QmpClient.ConnectAsync(Path.Combine(_dir, "absent.sock"), TimeSpan.FromMilliseconds(300), CancellationToken.None));
        Assert.Equal("QmpConnectTimeout", ex.ErrorId);
    }

    [Fact]
    public async Task Real_QEMU_answers_queries_and_refuses_unknown_commands()
    {
        // QEMU is a declared dependency (tools/install-deps.sh); its absence is a failure, not a skip.
        var qemu = QemuBinary() ?? throw new InvalidOperationException("qemu-system-x86_64 is not on PATH; run tools/install-deps.sh");

        var sock = Path.Combine(_dir, "real.sock");
        var psi = new ProcessStartInfo(qemu) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-machine", "none", "-nodefaults", "-display", "none", "-qmp", $"unix:{sock},server=on,wait=off" })
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi)!;
        try
        {
            await using var qmp = await QmpClient.ConnectAsync(sock, TimeSpan.FromSeconds(20), CancellationToken.None);
            Assert.NotNull(qmp.Version);
            var status = await qmp.ExecuteAsync("query-status", null, CancellationToken.None);
            Assert.False(string.IsNullOrEmpty(status!["status"]!.GetValue<string>()));
            var ex = await Assert.ThrowsAsync<ForkdException>(() => qmp.ExecuteAsync("no-such-command", null, CancellationToken.None));
            Assert.Equal("QmpCommandFailed", ex.ErrorId);
        }
        finally
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    internal static string? QemuBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "qemu-system-x86_64")).FirstOrDefault(File.Exists);
}
