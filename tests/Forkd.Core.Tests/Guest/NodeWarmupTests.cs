using System.Diagnostics;
using System.Text.Json.Nodes;
using Forkd.Core.Engine;
using Xunit;

namespace Forkd.Core.Tests.Big;

/// <summary>
/// The Node warm-up (guest/warmup/node-warmup.js) behind the real guest agent, both run on the host:
/// python3 forkd-agent.py --stdio with FORKD_WARMUP_CMD pointing at node. No VM needed.
/// </summary>
[Trait(Tiers.Name, Tiers.Full)]
public sealed class NodeWarmupTests : IAsyncLifetime
{
    private Process _agent = null!;
    private int _nextId;

    public async Task InitializeAsync()
    {
        var start = new ProcessStartInfo("python3")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(RepoPaths.Guest("forkd-agent.py"));
        start.ArgumentList.Add("--stdio");
        start.ArgumentList.Add("--recipe-env");
        start.ArgumentList.Add("/nonexistent/forkd-recipe.env");
        start.Environment["FORKD_WARMUP_CMD"] = "node " + RepoPaths.Guest("warmup", "node-warmup.js");
        start.Environment["FORKD_AGENT_LANG"] = "node";
        _agent = Process.Start(start)!;
        _agent.ErrorDataReceived += (_, _) => { };
        _agent.BeginErrorReadLine();

        var clock = Stopwatch.StartNew();
        while (true)
        {
            var ping = await CallAsync(new JsonObject { ["action"] = "ping" });
            if (ping["warmup_ready"]?.GetValue<bool>() == true)
            {
                Assert.Equal("node", ping["agent_lang"]?.GetValue<string>());
                return;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the node warm-up never became ready: " + ping.ToJsonString());
            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        _agent.StandardInput.Close();
        if (!_agent.WaitForExit(5000))
        {
            _agent.Kill(entireProcessTree: true);
        }

        await _agent.WaitForExitAsync();
        _agent.Dispose();
    }

    private async Task<JsonObject> CallAsync(JsonObject request)
    {
        request["id"] = "t" + Interlocked.Increment(ref _nextId);
        await _agent.StandardInput.WriteLineAsync(request.ToJsonString());
        await _agent.StandardInput.FlushAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var line = await _agent.StandardOutput.ReadLineAsync(timeout.Token) ?? throw new IOException("agent closed stdout");
        return (JsonObject)JsonNode.Parse(line)!;
    }

    private Task<JsonObject> EvalAsync(string code) => CallAsync(new JsonObject { ["action"] = "eval", ["code"] = code });

    private async Task<object?> ValueAsync(string code)
    {
        var reply = await EvalAsync(code);
        Assert.True(reply["error"] is null, "eval failed: " + reply.ToJsonString());
        return GuestValue.Decode(reply["result_json"]!.GetValue<string>());
    }

    [Fact]
    public async Task Code_is_an_async_function_body_with_top_level_await_and_return()
    {
        Assert.Equal(3L, await ValueAsync("return 1 + 2"));
        Assert.Equal("waited", await ValueAsync("await new Promise(r => setTimeout(r, 5)); return 'waited'"));
        Assert.Null(await ValueAsync("const x = 5;")); // no return → null
        Assert.Equal("linux", await ValueAsync("return require('os').platform()"));
    }

    [Fact]
    public async Task Non_finite_numbers_come_back_as_doubles_through_forkds_sentinels()
    {
        var reply = await EvalAsync("return [1, NaN, {a: Infinity, b: -Infinity}, 0.5]");
        var json = reply["result_json"]!.GetValue<string>();
        Assert.Contains("__js_NaN__", json, StringComparison.Ordinal);
        Assert.Contains("__js_-Infinity__", json, StringComparison.Ordinal);

        var value = Assert.IsType<object?[]>(GuestValue.Decode(json));
        Assert.Equal(1L, value[0]);
        Assert.True(double.IsNaN(Assert.IsType<double>(value[1])));
        var inner = Assert.IsType<System.Collections.Specialized.OrderedDictionary>(value[2]);
        Assert.Equal(double.PositiveInfinity, inner["a"]);
        Assert.Equal(double.NegativeInfinity, inner["b"]);
        Assert.Equal(0.5, value[3]);
        Assert.True(double.IsNaN(Assert.IsType<double>(await ValueAsync("return 0/0"))));
    }

    [Fact]
    public async Task Errors_carry_the_message_and_the_javascript_stack()
    {
        var thrown = await EvalAsync("function deep() { throw new TypeError('boom'); }\ndeep();");
        Assert.Equal("boom", thrown["error"]?.GetValue<string>());
        Assert.Contains("TypeError: boom", thrown["stack"]?.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("deep", thrown["stack"]?.GetValue<string>(), StringComparison.Ordinal);

        var bigint = await EvalAsync("return 10n");
        Assert.Contains("BigInt", bigint["error"]?.GetValue<string>(), StringComparison.Ordinal);

        // After errors the bridge still answers.
        Assert.Equal("still here", await ValueAsync("return 'still here'"));
    }

    [Fact]
    public async Task Printing_does_not_corrupt_the_bridge_and_state_persists_between_evals()
    {
        Assert.Equal("ok", await ValueAsync("console.log('noise on stdout'); process.stdout.write('more\\n'); return 'ok'"));
        Assert.Null(await ValueAsync("state.n = 41"));
        Assert.Equal(42L, await ValueAsync("return state.n + 1"));
    }
}
