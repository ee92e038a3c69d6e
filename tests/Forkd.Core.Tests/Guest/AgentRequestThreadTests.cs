using Forkd.Core.Guest;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// The agent answers requests on threads it keeps (a forked child inherits them idle) rather than starting one
/// per request: under TCG each thread start is guest code every fresh child translates again.
/// </summary>
public sealed class AgentRequestThreadTests
{
    // threading's name counter moves on at every Thread() the agent makes, however short-lived the thread.
    private const string NextThreadNumber = "import threading; threading._counter()";

    [Fact]
    public async Task Sequential_pings_and_evals_on_the_multiplexed_stream_start_no_thread()
    {
        // (An exec drains its pipes on two threads of its own: it starts a process anyway.)
        await using var agent = await TestAgent.StartAsync(multiplexed: true);
        var before = int.Parse((await agent.Client.EvalAsync(NextThreadNumber)).Result!, System.Globalization.CultureInfo.InvariantCulture);

        for (var i = 0; i < 5; i++)
        {
            await agent.Client.PingAsync();
            Assert.Equal((i * i).ToString(System.Globalization.CultureInfo.InvariantCulture), (await agent.Client.EvalAsync($"{i} * {i}")).Result);
        }

        var after = int.Parse((await agent.Client.EvalAsync(NextThreadNumber)).Result!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(before + 1, after); // only this test's own read moved it
    }

    [Fact]
    public async Task A_ping_on_the_fast_path_answers_exactly_like_the_full_path()
    {
        await using var agent = await TestAgent.StartAsync(multiplexed: true);
        var plain = await agent.Client.SendAsync(new() { ["action"] = "ping" }, TimeSpan.FromSeconds(10), CancellationToken.None);
        // An extra field takes the ping off the fast path: the same reply, built in full.
        var full = await agent.Client.SendAsync(new() { ["action"] = "ping", ["probe"] = 1 }, TimeSpan.FromSeconds(10), CancellationToken.None);

        plain.Remove("id");
        full.Remove("id");
        Assert.True(plain["pong"]!.GetValue<bool>());
        Assert.Equal(full.ToJsonString(), plain.ToJsonString());
    }

    [Fact]
    public async Task A_request_followed_by_the_end_of_the_stream_is_answered_before_the_agent_exits()
    {
        for (var i = 0; i < 10; i++)
        {
            using var process = System.Diagnostics.Process.Start(AgentProcess.StartInfo("--stdio", "--recipe-env", "/dev/null"))!;
            await process.StandardInput.WriteAsync("{\"action\":\"eval\",\"id\":\"last\",\"code\":\"6 * 7\"}\n");
            process.StandardInput.Close();
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();

            Assert.Contains("\"id\": \"last\"", output, StringComparison.Ordinal);
            Assert.Contains("\"result\": \"42\"", output, StringComparison.Ordinal);
        }
    }
}
