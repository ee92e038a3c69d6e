using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// AgentClient against peers that break the protocol. The real agent never sends these, so a
/// scripted TCP peer plays the broken guest; the happy paths run against the real agent elsewhere.
/// </summary>
public sealed class AgentClientTests
{
    private static async Task<(TcpListener Listener, Task<TcpClient> Accepted)> ListenAsync()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await Task.Yield();
        return (listener, listener.AcceptTcpClientAsync());
    }

    /// <summary>The multiplexed mode (one stream, ids) over a plain TCP socket to the scripted peer.</summary>
    private static async Task<AgentClient> ConnectStreamAsync(TcpListener listener)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        return new AgentClient(new NetworkStream(socket, ownsSocket: true), "scripted-peer");
    }

    private static async Task<string> ReadRequestIdAsync(StreamReader reader) =>
        System.Text.Json.Nodes.JsonNode.Parse((await reader.ReadLineAsync())!)!["id"]!.GetValue<string>();

    [Fact]
    public async Task A_reply_that_is_not_JSON_is_an_AgentProtocolError()
    {
        var (listener, accepted) = await ListenAsync();
        using var _ = listener.Server;
        await using var client = await ConnectStreamAsync(listener);
        using var peer = await accepted;
        var ping = client.PingAsync(TimeSpan.FromSeconds(10));
        using var reader = new StreamReader(peer.GetStream());
        await reader.ReadLineAsync();
        await peer.GetStream().WriteAsync(Encoding.UTF8.GetBytes("garbage{\n"));

        var ex = await Assert.ThrowsAsync<ForkdException>(() => ping);

        Assert.Equal("AgentProtocolError", ex.ErrorId);
        Assert.Contains("garbage{", ex.Message);
    }

    [Fact]
    public async Task A_silent_agent_is_an_AgentTimeout()
    {
        var (listener, accepted) = await ListenAsync();
        using var _ = listener.Server;
        await using var client = await ConnectStreamAsync(listener);
        using var peer = await accepted;
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<ForkdException>(() => client.PingAsync(TimeSpan.FromMilliseconds(300)));

        Assert.Equal("AgentTimeout", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.Timeout, ex.Kind);
    }

    [Fact]
    public async Task A_closed_connection_fails_waiting_requests_with_AgentUnreachable()
    {
        var (listener, accepted) = await ListenAsync();
        using var _ = listener.Server;
        await using var client = await ConnectStreamAsync(listener);
        var peer = await accepted;
        var ping = client.PingAsync(TimeSpan.FromSeconds(10));
        peer.Close();

        var ex = await Assert.ThrowsAsync<ForkdException>(() => ping);

        Assert.Equal("AgentUnreachable", ex.ErrorId);
    }

    [Fact]
    public async Task A_stale_reply_is_dropped_and_the_matching_one_is_returned()
    {
        var (listener, accepted) = await ListenAsync();
        using var _ = listener.Server;
        await using var client = await ConnectStreamAsync(listener);
        using var peer = await accepted;
        var eval = client.EvalAsync("x", TimeSpan.FromSeconds(10));
        using var reader = new StreamReader(peer.GetStream());
        var id = await ReadRequestIdAsync(reader);
        var replies = "{\"id\": \"parent-7\", \"result\": \"stale\", \"exit_code\": 0}\n" +
            $"{{\"id\": \"{id}\", \"result\": \"fresh\", \"exit_code\": 0}}\n";
        await peer.GetStream().WriteAsync(Encoding.UTF8.GetBytes(replies));

        var result = await eval;

        Assert.Equal("fresh", result.Result);
        Assert.Equal(1, client.StaleReplies);
    }

    [Fact]
    public async Task Connecting_to_a_socket_path_that_never_appears_is_AgentUnreachable()
    {
        var path = Path.Combine(Path.GetTempPath(), "forkd-test-no-such-" + Guid.NewGuid().ToString("N") + ".sock");

        var ex = await Assert.ThrowsAsync<ForkdException>(() => AgentClient.ConnectUnixAsync(path, TimeSpan.FromMilliseconds(300), default));

        Assert.Equal("AgentUnreachable", ex.ErrorId);
    }

    [Fact]
    public async Task The_real_agent_over_stdio_answers_with_the_same_protocol()
    {
        using var process = Process.Start(AgentProcess.StartInfo("--stdio", "--recipe-env", "/dev/null"))!;
        try
        {
            await using var client = new AgentClient(process.StandardOutput.BaseStream, process.StandardInput.BaseStream, "stdio");

            var ping = await client.PingAsync(TimeSpan.FromSeconds(20));
            var eval = await client.EvalAsync("sum(range(10))");

            Assert.Equal(process.Id, ping.Pid);
            Assert.Equal("45", eval.Result);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task The_real_agent_over_a_unix_socket_is_reached_once_the_socket_appears()
    {
        // socat-free: python3 bridges a Unix socket to the agent's stdio, created after a delay.
        var path = Path.Combine(Path.GetTempPath(), "forkd-test-agent-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        var script = $$"""
            import socket, subprocess, time, sys
            time.sleep(0.5)
            s = socket.socket(socket.AF_UNIX); s.bind("{{path}}"); s.listen(1)
            c, _ = s.accept()
            subprocess.run([sys.executable, "{{AgentProcess.Sources.AgentPath}}", "--stdio", "--recipe-env", "/dev/null"], stdin=c.fileno(), stdout=c.fileno())
            """;
        var info = new ProcessStartInfo("python3") { UseShellExecute = false, RedirectStandardError = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        using var bridge = Process.Start(info)!;
        try
        {
            await using var client = await AgentClient.ConnectUnixAsync(path, TimeSpan.FromSeconds(10), default);

            var ping = await client.PingAsync(TimeSpan.FromSeconds(20));

            Assert.Equal("python", ping.AgentLang);
            Assert.Equal("unix:" + path, client.Target);
        }
        finally
        {
            bridge.Kill(entireProcessTree: true);
            await bridge.WaitForExitAsync();
            File.Delete(path);
        }
    }
}

/// <summary>
/// The hybrid-vsock handshake as Firecracker's published docs/vsock.md describes it (no Firecracker
/// binary can run here): a Unix socket peer that answers "CONNECT 8888\n" with "OK 1073741824\n"
/// and then bridges to the real agent over stdio; its first connection is closed, as Firecracker
/// does while nothing listens in the guest.
/// </summary>
public sealed class HybridVsockHandshakeTests
{
    [Fact]
    public async Task Connect_sends_CONNECT_port_reads_OK_then_speaks_to_the_real_agent_per_Firecracker_vsock_doc()
    {
        var path = Path.Combine(Path.GetTempPath(), "forkd-test-vsock-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        var script = $$"""
            import socket, subprocess, sys
            s = socket.socket(socket.AF_UNIX); s.bind("{{path}}"); s.listen(4)
            first, _ = s.accept(); first.recv(64); first.close()   # guest not listening yet
            c, _ = s.accept()
            line = b""
            while not line.endswith(b"\n"):
                line += c.recv(1)
            if line != b"CONNECT 8888\n":
                sys.exit("bad handshake: %r" % line)
            c.sendall(b"OK 1073741824\n")
            subprocess.run([sys.executable, "{{AgentProcess.Sources.AgentPath}}", "--stdio", "--recipe-env", "/dev/null"], stdin=c.fileno(), stdout=c.fileno())
            """;
        var info = new System.Diagnostics.ProcessStartInfo("python3") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        using var peer = System.Diagnostics.Process.Start(info)!;
        try
        {
            await using var client = await AgentClient.ConnectHybridVsockAsync(path, 8888, TimeSpan.FromSeconds(15), default);

            var eval = await client.EvalAsync("'vsock ' + str(8888)", TimeSpan.FromSeconds(20));

            Assert.Equal("'vsock 8888'", eval.Result);
            Assert.Equal($"vsock:{path}:8888", client.Target);
        }
        finally
        {
            peer.Kill(entireProcessTree: true);
            await peer.WaitForExitAsync();
            File.Delete(path);
        }
    }
}
