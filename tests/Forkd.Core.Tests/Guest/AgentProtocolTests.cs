using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>The real guest agent, run on the host, driven through the real AgentClient over TCP.</summary>
public sealed class AgentProtocolTests : IAsyncLifetime
{
    private AgentProcess _agent = null!;
    private AgentClient _client = null!;

    public async Task InitializeAsync()
    {
        _agent = await AgentProcess.StartAsync();
        _client = await _agent.ConnectAsync();
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _agent.DisposeAsync();
    }

    [Fact]
    public async Task Ping_reports_the_agent_process_and_python_language()
    {
        var ping = await _client.PingAsync();

        Assert.Equal(_agent.ProcessId, ping.Pid);
        Assert.Equal("python", ping.AgentLang);
        Assert.False(ping.WarmupReady);
        Assert.Matches(@"^3\.\d+\.\d+$", ping.PythonVersion);
    }

    [Fact]
    public async Task Exec_returns_stdout_stderr_and_exit_code()
    {
        var result = await _client.ExecAsync(["sh", "-c", "printf out; printf err >&2; exit 3"]);

        Assert.Equal("out", result.Stdout);
        Assert.Equal("err", result.Stderr);
        Assert.Equal(3, result.ExitCode);
        Assert.Null(result.Error);
        Assert.False(result.Succeeded);
    }

    [Fact]
    public async Task Exec_past_its_timeout_is_killed_and_reported_as_TimeoutExpired()
    {
        var result = await _client.ExecAsync(["sleep", "20"], TimeSpan.FromSeconds(1));

        Assert.StartsWith("TimeoutExpired: ", result.Error);
        Assert.Equal(1, result.ExitCode);
        Assert.True(result.Duration < TimeSpan.FromSeconds(15), $"took {result.Duration}");
        Assert.Contains("TimeoutExpired", result.Traceback);
    }

    [Fact]
    public async Task Exec_of_a_missing_program_reports_FileNotFoundError()
    {
        var result = await _client.ExecAsync(["/nonexistent/program"]);

        Assert.StartsWith("FileNotFoundError: ", result.Error);
        Assert.Equal(1, result.ExitCode);
    }

    [Fact]
    public async Task Eval_keeps_one_namespace_so_statements_then_expressions_see_earlier_state()
    {
        var statement = await _client.EvalAsync("import math\nwarm = [math.factorial(5)]");
        var expression = await _client.EvalAsync("warm[0] + 1");

        Assert.Equal("None", statement.Result);
        Assert.Null(statement.Error);
        Assert.Equal("121", expression.Result);
        Assert.Equal("121", expression.ResultJson);
    }

    [Fact]
    public async Task Eval_of_statements_ending_in_an_expression_returns_that_value()
    {
        var result = await _client.EvalAsync("import math; r = 2; math.factorial(r + 3)");

        Assert.Equal("120", result.Result);
        Assert.Equal("2", (await _client.EvalAsync("r")).Result);
    }

    [Fact]
    public async Task Eval_syntax_error_points_at_the_code_not_at_the_agent()
    {
        var result = await _client.EvalAsync("x = (1 +");

        Assert.StartsWith("SyntaxError: ", result.Error);
        Assert.Contains("<forkd-eval>", result.Traceback);
        Assert.DoesNotContain("forkd-agent.py", result.Traceback);
        Assert.DoesNotContain("ast.py", result.Traceback);
    }

    [Fact]
    public async Task Eval_error_carries_a_traceback_of_the_evaluated_code_only()
    {
        var result = await _client.EvalAsync("1/0");

        Assert.Equal("ZeroDivisionError: division by zero", result.Error);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("<forkd-eval>", result.Traceback);
        Assert.DoesNotContain("forkd-agent.py", result.Traceback);
        Assert.Null(result.Result);
    }

    [Fact]
    public async Task Eval_maps_NaN_and_infinities_to_the_sentinels_in_result_json()
    {
        var result = await _client.EvalAsync("{'v': [float('nan'), float('inf'), -float('inf'), 2.5], 't': (1, None)}");

        var json = JsonNode.Parse(result.ResultJson!)!;
        Assert.Equal("__js_NaN__", json["v"]![0]!.GetValue<string>());
        Assert.Equal("__js_Infinity__", json["v"]![1]!.GetValue<string>());
        Assert.Equal("__js_-Infinity__", json["v"]![2]!.GetValue<string>());
        Assert.Equal(2.5, json["v"]![3]!.GetValue<double>());
        Assert.Equal(1, json["t"]![0]!.GetValue<int>());
        Assert.Contains("nan", result.Result);
    }

    [Fact]
    public async Task Eval_of_a_value_without_JSON_form_has_a_repr_and_no_result_json()
    {
        var result = await _client.EvalAsync("object()");

        Assert.StartsWith("<object object at", result.Result);
        Assert.Null(result.ResultJson);
        Assert.True(result.Succeeded);
    }

    [Fact]
    public async Task Unknown_and_missing_actions_are_errors_shaped_like_forkd()
    {
        var unknown = await _client.SendAsync(new JsonObject { ["action"] = "nope" }, TimeSpan.FromSeconds(10), CancellationToken.None);
        var missing = await _client.SendAsync(new JsonObject(), TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.Equal("unknown action: nope", unknown["error"]!.GetValue<string>());
        Assert.Equal(1, unknown["exit_code"]!.GetValue<int>());
        Assert.Equal("unknown action: None", missing["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("not json\n", "JSONDecodeError: Expecting value: line 1 column 1 (char 0)")]
    [InlineData("[1,2]\n", "AttributeError: 'list' object has no attribute 'get'")]
    [InlineData("\n", "JSONDecodeError: Expecting value: line 2 column 1 (char 1)")]
    public async Task A_raw_TCP_connection_gets_one_reply_even_to_bad_input_and_is_closed_like_forkd(string request, string error)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _agent.Port);
        var stream = tcp.GetStream();
        // A second request on the same connection is ignored, as forkd's agent does.
        await stream.WriteAsync(Encoding.UTF8.GetBytes(request + "{\"action\":\"ping\"}\n"));
        using var reader = new StreamReader(stream);

        var all = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(20));

        var lines = all.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var reply = Assert.Single(lines);
        var json = JsonNode.Parse(reply)!;
        Assert.Equal(error, json["error"]!.GetValue<string>());
        Assert.Contains("Traceback", json["traceback"]!.GetValue<string>());
        Assert.Equal(1, json["exit_code"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_request_without_trailing_newline_is_served_when_the_client_half_closes()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _agent.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.UTF8.GetBytes("{\"action\":\"eval\",\"code\":\"6*7\"}"));
        tcp.Client.Shutdown(SocketShutdown.Send);
        using var reader = new StreamReader(stream);

        var reply = JsonNode.Parse((await reader.ReadToEndAsync()).Trim())!;

        Assert.Equal("42", reply["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Overlapping_requests_on_one_connection_each_get_their_own_reply()
    {
        var tasks = Enumerable.Range(0, 20).Select(i => _client.EvalAsync($"{i} * 3")).ToList();

        var results = await Task.WhenAll(tasks);

        Assert.Equal(Enumerable.Range(0, 20).Select(i => (i * 3).ToString(System.Globalization.CultureInfo.InvariantCulture)), results.Select(r => r.Result));
    }
}
