using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Forkd.Service.Hosting;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Forkd.Service.Tests;

/// <summary>MCP sessions with the official C# SDK's client: stdio (forkd-controller mcp) and HTTP (/mcp on the controller).</summary>
[Collection(RealChildGroup.Name)]
[Trait("Tier", "Full")] // boots QEMU: not in build.ps1 Test -Fast
public sealed class McpTests
{
    private static readonly string[] ExpectedTools = ["branch", "eval", "exec", "fork", "list_sandboxes", "list_snapshots", "ping", "stop"];

    private readonly RealChildFixture _fixture;

    public McpTests(RealChildFixture fixture) => _fixture = fixture;

    [Fact]
    public async Task Stdio_session_lists_tools_forks_a_child_evaluates_in_it_and_stops_it()
    {
        var controller = Path.Combine(AppContext.BaseDirectory, "forkd-controller.dll");
        var transport = new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "forkd",
            Command = "dotnet",
            Arguments = [controller, "mcp"],
            EnvironmentVariables = new Dictionary<string, string?> { ["FORKD_DATA_DIR"] = _fixture.Paths.DataDirectory },
        });
        await using var client = await McpClient.CreateAsync(transport);
        await RunSessionAsync(client);
    }

    [Fact]
    public async Task Http_session_on_the_controller_needs_the_token_and_does_the_same()
    {
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await using var c = await TestController.StartAsync(_fixture.Paths, new ControllerOptions { TokenFile = _fixture.Temp.File("mcp-token", token) });
        var endpoint = new Uri(c.Address, "/mcp");

        var anonymous = new HttpClientTransport(new HttpClientTransportOptions { Endpoint = endpoint, TransportMode = HttpTransportMode.StreamableHttp });
        await Assert.ThrowsAnyAsync<Exception>(async () => await (await McpClient.CreateAsync(anonymous)).DisposeAsync());

        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = endpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = new AuthenticationHeaderValue("Bearer", token).ToString() },
        });
        await using var client = await McpClient.CreateAsync(transport);
        await RunSessionAsync(client);
    }

    private static async Task RunSessionAsync(McpClient client)
    {
        Assert.Equal("forkd", client.ServerInfo?.Name);
        var tools = await client.ListToolsAsync();
        Assert.Equal(ExpectedTools, tools.Select(t => t.Name).Order(StringComparer.Ordinal));
        var forkTool = tools.Single(t => t.Name == "fork");
        Assert.Contains("snapshot_tag", forkTool.JsonSchema.GetProperty("properties").EnumerateObject().Select(p => p.Name));
        Assert.Contains("snapshot_tag", forkTool.JsonSchema.GetProperty("required").EnumerateArray().Select(p => p.GetString()));

        var snapshots = Json(await client.CallToolAsync("list_snapshots"));
        Assert.Contains(snapshots.EnumerateArray(), s => s.GetProperty("tag").GetString() == RealChildFixture.Tag);

        // One call: a warm sandbox, ready to answer.
        var forked = Json(await client.CallToolAsync("fork", new Dictionary<string, object?> { ["snapshot_tag"] = RealChildFixture.Tag }));
        var id = forked[0].GetProperty("id").GetString()!;
        try
        {
            var eval = Json(await client.CallToolAsync("eval", new Dictionary<string, object?> { ["sandbox_id"] = id, ["code"] = "warm['token']" }));
            Assert.Equal("svc-w4rm", eval.GetProperty("value").GetString());

            var failed = Json(await client.CallToolAsync("eval", new Dictionary<string, object?> { ["sandbox_id"] = id, ["code"] = "undefined_name" }));
            Assert.Contains("NameError", failed.GetProperty("error").GetString(), StringComparison.Ordinal);

            var exec = Json(await client.CallToolAsync("exec", new Dictionary<string, object?> { ["sandbox_id"] = id, ["args"] = new[] { "echo", "mcp" } }));
            Assert.Equal("mcp\n", exec.GetProperty("stdout").GetString());

            // Clear tool errors: the ErrorId and message, flagged as an error result.
            var bad = await client.CallToolAsync("eval", new Dictionary<string, object?> { ["sandbox_id"] = "../etc", ["code"] = "1" });
            Assert.True(bad.IsError == true);
            Assert.Contains("InvalidChildId", Text(bad), StringComparison.Ordinal);
            var missing = await client.CallToolAsync("fork", new Dictionary<string, object?> { ["snapshot_tag"] = "no-such-tag" });
            Assert.True(missing.IsError == true);
            Assert.Contains("SnapshotNotFound", Text(missing), StringComparison.Ordinal);
        }
        finally
        {
            var stopped = await client.CallToolAsync("stop", new Dictionary<string, object?> { ["sandbox_id"] = id });
            Assert.True(stopped.IsError != true, Text(stopped));
        }

        var after = Json(await client.CallToolAsync("list_sandboxes"));
        Assert.DoesNotContain(after.EnumerateArray(), s => s.GetProperty("id").GetString() == id);
    }

    private static string Text(CallToolResult result) => string.Concat(result.Content.OfType<TextContentBlock>().Select(b => b.Text));

    private static JsonElement Json(CallToolResult result)
    {
        Assert.True(result.IsError != true, Text(result));
        return JsonDocument.Parse(Text(result)).RootElement.Clone();
    }
}
