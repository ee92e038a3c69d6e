using System.Diagnostics;
using System.Text.Json.Nodes;
using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>The agent's warm-up bridge (spec 3.4) against a real warm-up process (tests/guest/fake-warmup.py).</summary>
public sealed class WarmupBridgeTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;
    private AgentClient _client = null!;

    public async Task InitializeAsync()
    {
        var fake = Path.Combine(AgentProcess.RepoRoot, "tests", "guest", "fake-warmup.py");
        _agent = await AgentProcess.StartAsync(new Dictionary<string, string>
        {
            ["FORKD_WARMUP_CMD"] = $"python3 -u {fake}",
            ["FORKD_AGENT_LANG"] = "node",
        });
        _client = await _agent.ConnectAsync();
        var clock = Stopwatch.StartNew();
        while (!(await _client.PingAsync()).WarmupReady)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "warm-up never became ready: " + string.Join('\n', _agent.Log));
            await Task.Delay(50);
        }
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _agent.DisposeAsync();
    }

    [Fact]
    public async Task Ping_shows_the_bridge_language_and_readiness_and_stderr_is_forwarded()
    {
        var ping = await _client.PingAsync();

        Assert.Equal("node", ping.AgentLang);
        Assert.True(ping.WarmupReady);
        Assert.Contains(_agent.Log, l => l == "forkd-warmup: fake-warmup: started");
    }

    [Fact]
    public async Task Eval_is_routed_to_the_warmup_and_returns_result_json()
    {
        var result = await _client.EvalAsync("return 1 + 1");

        Assert.Equal("\"echoed: return 1 + 1\"", result.ResultJson);
        Assert.Null(result.Result);
        Assert.True(result.Succeeded);
    }

    [Fact]
    public async Task Non_finite_numbers_from_the_warmup_become_sentinels()
    {
        var result = await _client.EvalAsync("nan");

        var json = JsonNode.Parse(result.ResultJson!)!.AsArray();
        Assert.Equal(["__js_NaN__", "__js_Infinity__", "__js_-Infinity__"], json.Take(3).Select(n => n!.GetValue<string>()));
        Assert.Equal(1.5, json[3]!.GetValue<double>());
    }

    [Fact]
    public async Task Warmup_errors_carry_the_stack()
    {
        var result = await _client.EvalAsync("fail");

        Assert.Equal("ReferenceError: x is not defined", result.Error);
        Assert.Equal("at <eval>:1", result.Stack);
        Assert.Equal(1, result.ExitCode);
    }

    [Fact]
    public async Task A_reply_with_another_id_is_skipped()
    {
        var result = await _client.EvalAsync("noise");

        Assert.Equal("\"right\"", result.ResultJson);
    }

    [Fact]
    public async Task A_slow_warmup_times_out_and_its_late_reply_does_not_answer_the_next_request()
    {
        var slow = await _client.SendAsync(new JsonObject { ["action"] = "eval", ["code"] = "slow:1.5", ["timeout"] = 0.3 },
            TimeSpan.FromSeconds(10), CancellationToken.None);
        var next = await _client.EvalAsync("after");

        Assert.StartsWith("warmup timeout", slow["error"]!.GetValue<string>());
        Assert.Equal("\"echoed: after\"", next.ResultJson);
    }
}
