using Forkd.Core.Guest;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// Our agent run the way forkd's rootfs-init/tests/smoke-test.sh runs forkd's (spec 3.6): no arguments,
/// FORKD_WARMUP_CMD pointing at the fake warm-up with FORKD_AGENT_LANG=node, wait for "agent listening" in
/// its log, then `nc`-style requests (one line, write side half-closed, read to EOF) to port 8888. Each
/// agent runs in a new network namespace that has only `lo` (so port 8888 is its own, whatever else runs on
/// this machine), which is also the "no network but lo" case: forkd's agent listens on 0.0.0.0:8888 there.
/// </summary>
public sealed class AgentForkdSmokeTests
{
    private const int ForkdPort = 8888;

    [Fact]
    public async Task Twenty_consecutive_starts_answer_ping_and_eval_with_forkds_fields_like_its_smoke_test()
    {
        var fake = Path.Combine(AgentProcess.RepoRoot, "tests", "guest", "fake-warmup.py");
        for (var start = 1; start <= 20; start++)
        {
            await using var agent = await IsolatedAgent.StartAsync(new() { ["FORKD_WARMUP_CMD"] = $"python3 {fake}", ["FORKD_AGENT_LANG"] = "node" });
            var because = $"start {start}; agent log:\n{string.Join('\n', agent.Log)}";

            var ping = JsonNode.Parse(await agent.NcAsync("{\"action\":\"ping\"}\n"))!.AsObject();
            var eval = JsonNode.Parse(await agent.NcAsync("{\"action\":\"eval\",\"code\":\"hello\"}\n"))!.AsObject();

            // forkd's ping shape (spec 3.2), and the smoke test's expectations: node, warm-up ready at once.
            Assert.True(ping["pong"]!.GetValue<bool>(), because);
            Assert.False(string.IsNullOrEmpty(ping["numpy_version"]!.GetValue<string>()), because);
            Assert.Equal(agent.ProcessId, ping["pid"]!.GetValue<int>());
            Assert.Equal("node", ping["agent_lang"]!.GetValue<string>());
            Assert.True(ping["warmup_ready"]!.GetValue<bool>(), because);
            // Node eval through the bridge: forkd's result_json, a JSON string holding the JSON value.
            Assert.Equal("\"echoed: hello\"", eval["result_json"]!.GetValue<string>());
            Assert.Equal(0, eval["exit_code"]!.GetValue<int>());
            Assert.Contains("forkd: agent listening on 0.0.0.0:8888", agent.Log);
            Assert.DoesNotContain(agent.Log, line => line.Contains("vsock", StringComparison.OrdinalIgnoreCase));
        }
    }

    [Fact]
    public async Task A_python_agent_gives_forkds_repr_result_without_result_json_and_answers_a_blank_line()
    {
        await using var agent = await IsolatedAgent.StartAsync([]);

        var eval = JsonNode.Parse(await agent.NcAsync("{\"action\":\"eval\",\"code\":\"1+1\"}\n"))!.AsObject();
        var blank = JsonNode.Parse(await agent.NcAsync("\n"))!.AsObject();
        var ping = JsonNode.Parse(await agent.NcAsync("{\"action\":\"ping\"}\n"))!.AsObject();

        // forkd's SDK returns json.loads(result_json) when that key exists, else result: '2' from forkd's agent, so from ours.
        Assert.False(eval.ContainsKey("result_json"));
        Assert.Equal("2", eval["result"]!.GetValue<string>());
        Assert.Equal(2, eval["forkd_value"]!.GetValue<int>());
        Assert.Equal("JSONDecodeError: Expecting value: line 2 column 1 (char 1)", blank["error"]!.GetValue<string>());
        Assert.Equal(1, blank["exit_code"]!.GetValue<int>());
        // No warm-up configured: forkd answers false, and so do we.
        Assert.False(ping["warmup_ready"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Our_host_client_reads_the_native_value_over_the_namespace_TCP_path_one_connection_per_request()
    {
        await using var agent = await IsolatedAgent.StartAsync([]);
        var endpoint = new AgentEndpoint(AgentTransport.Tcp, "127.0.0.1", ForkdPort, agent.NamespacePath);

        await using var client = await AgentWait.ConnectAsync(endpoint, TimeSpan.FromSeconds(5), default);
        await client.EvalAsync("warm = {'token': 'w4rm'}");
        var value = await client.EvalAsync("(warm['token'], 1 + 1)");
        var ping = await client.PingAsync();

        Assert.Equal("('w4rm', 2)", value.Result);
        Assert.Equal("[\"w4rm\",2]", value.ResultJson);
        Assert.Equal(agent.ProcessId, ping.Pid);
        Assert.Matches("^[0-9a-f]{16}$", ping.Generation);
        Assert.Equal(ping.Generation, client.Generation);
    }

    /// <summary>The agent with no arguments, in a fresh network namespace (`unshare -n`) where only lo is up.</summary>
    private sealed class IsolatedAgent : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly List<string> _log = [];

        private IsolatedAgent(Process process) => _process = process;

        public int ProcessId => _process.Id;

        /// <summary>Its network namespace; NetworkNamespace resolves a rooted path as is.</summary>
        public string NamespacePath => $"/proc/{_process.Id}/ns/net";

        public IReadOnlyList<string> Log
        {
            get
            {
                lock (_log)
                {
                    return [.. _log];
                }
            }
        }

        public static async Task<IsolatedAgent> StartAsync(Dictionary<string, string> env)
        {
            var info = new ProcessStartInfo("unshare") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-n", "sh", "-c", $"ip link set lo up && exec python3 -u '{AgentProcess.Sources.AgentPath}'" })
            {
                info.ArgumentList.Add(a);
            }

            foreach (var name in new[] { "FORKD_WARMUP_CMD", "FORKD_AGENT_LANG", "FORKD_GUEST" })
            {
                info.Environment.Remove(name);
            }

            foreach (var (k, v) in env)
            {
                info.Environment[k] = v;
            }

            var agent = new IsolatedAgent(Process.Start(info)!);
            var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void Collect(string? line, string prefix)
            {
                if (line is null)
                {
                    return;
                }

                lock (agent._log)
                {
                    agent._log.Add(prefix + line);
                }

                if (line.Contains("agent listening", StringComparison.Ordinal))
                {
                    listening.TrySetResult();
                }
            }

            agent._process.OutputDataReceived += (_, e) => Collect(e.Data, "");
            agent._process.ErrorDataReceived += (_, e) => Collect(e.Data, "stderr: ");
            agent._process.BeginOutputReadLine();
            agent._process.BeginErrorReadLine();
            try
            {
                // The smoke test polls the log 30 x 0.2 s; a shared 2-core host gets more slack.
                await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                await agent.DisposeAsync();
                throw new TimeoutException("the agent never logged 'agent listening':\n" + string.Join('\n', agent.Log));
            }

            return agent;
        }

        /// <summary>What `nc -q1 127.0.0.1 8888` does with one line on stdin: send it, half-close, print everything until EOF.</summary>
        public async Task<string> NcAsync(string request)
        {
            using var socket = NetworkNamespace.CreateTcpSocket(NamespacePath);
            await socket.ConnectAsync(IPAddress.Loopback, ForkdPort);
            using var stream = new NetworkStream(socket);
            await socket.SendAsync(Encoding.UTF8.GetBytes(request));
            socket.Shutdown(SocketShutdown.Send);
            using var reader = new StreamReader(stream);
            return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }
    }
}
