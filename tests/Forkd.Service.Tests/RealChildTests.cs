using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Service.Hosting;

namespace Forkd.Service.Tests;

/// <summary>Real TCG QEMU children of a real snapshot, driven over real HTTP; the registry is the one Get-ForkdChild reads.</summary>
[Collection(RealChildGroup.Name)]
[Trait("Tier", "Full")] // boots QEMU: not in build.ps1 Test -Fast
public sealed class RealChildTests
{
    private readonly RealChildFixture _fixture;

    public RealChildTests(RealChildFixture fixture) => _fixture = fixture;

    private ForkdPaths Paths => _fixture.Paths;

    [Fact]
    public async Task Fork_eval_exec_ping_delete_over_rest_and_the_child_is_in_the_shared_registry()
    {
        await using var c = await TestController.StartAsync(Paths);
        var created = await c.Client.PostAsync("/v1/sandboxes", Json(new { snapshot_tag = RealChildFixture.Tag, n = 1 }));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var box = (await created.Content.ReadFromJsonAsync<JsonElement>())[0];
        var id = box.GetProperty("id").GetString()!;
        Assert.Equal(RealChildFixture.Tag, box.GetProperty("snapshot_tag").GetString());
        Assert.Equal(JsonValueKind.Null, box.GetProperty("netns").ValueKind);
        Assert.Equal(JsonValueKind.Null, box.GetProperty("memory_limit_mib").ValueKind);

        // The cmdlets' registry (Get-ForkdChild reads it) has the child, and its VMM is a live process.
        var recorded = new ChildRegistry(Paths).Get(id);
        Assert.NotNull(recorded);
        Assert.Equal(ChildState.Running, recorded.State);
        Assert.Equal(recorded.ProcessId, box.GetProperty("pid").GetInt32());

        var eval = await Post<JsonElement>(c, $"/v1/sandboxes/{id}/eval", new { code = "warm['token'] + str(sum(warm['squares']))" });
        Assert.Equal("'svc-w4rm328350'", eval.GetProperty("result").GetString());
        Assert.Equal(JsonValueKind.Null, eval.GetProperty("error").ValueKind);
        Assert.Equal(0, eval.GetProperty("exit_code").GetInt32());
        Assert.Equal("svc-w4rm328350", eval.GetProperty("value").GetString());

        var exec = await Post<JsonElement>(c, $"/v1/sandboxes/{id}/exec", new { args = new[] { "sh", "-c", "echo hi; echo no >&2; exit 4" } });
        Assert.Equal("hi\n", exec.GetProperty("stdout").GetString());
        Assert.Equal("no\n", exec.GetProperty("stderr").GetString());
        Assert.Equal(4, exec.GetProperty("exit_code").GetInt32());

        using (var empty = await c.Client.PostAsync($"/v1/sandboxes/{id}/exec", Json(new { args = Array.Empty<string>() })))
        {
            Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        }

        var ping = await Post<JsonElement>(c, $"/v1/sandboxes/{id}/ping", null);
        Assert.True(ping.GetProperty("pong").GetBoolean());
        Assert.True(ping.TryGetProperty("agent_lang", out _));

        using (var inUse = await c.Client.DeleteAsync($"/v1/snapshots/{RealChildFixture.Tag}"))
        {
            Assert.Equal(HttpStatusCode.Conflict, inUse.StatusCode);
        }

        using (var deleted = await c.Client.DeleteAsync($"/v1/sandboxes/{id}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        Assert.Null(new ChildRegistry(Paths).Get(id));
        Assert.False(ProcessControl.IsAlive(recorded.ProcessId) && new ChildRegistry(Paths).IsOurProcess(recorded.ProcessId, recorded.WorkDirectory));
        Assert.False(Directory.Exists(recorded.WorkDirectory));
    }

    [Fact]
    public async Task A_child_forked_outside_the_service_is_driven_over_rest()
    {
        // What Invoke-ForkdFork does: the engine's forker writes the shared registry.
        var engine = new ServiceEngine(Paths);
        var child = (await engine.ForkAsync(new ForkRequest { Tag = RealChildFixture.Tag }, CancellationToken.None)).Single();
        await using var c = await TestController.StartAsync(Paths);
        var listed = await c.Client.GetFromJsonAsync<JsonElement>("/v1/sandboxes");
        Assert.Contains(listed.EnumerateArray(), s => s.GetProperty("id").GetString() == child.Id);
        var eval = await Post<JsonElement>(c, $"/v1/sandboxes/{child.Id}/eval", new { code = "6 * 7" });
        Assert.Equal("42", eval.GetProperty("result").GetString());
        using var deleted = await c.Client.DeleteAsync($"/v1/sandboxes/{child.Id}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
    }

    [Fact]
    public async Task Concurrent_fork_and_eval_requests_all_succeed()
    {
        await using var c = await TestController.StartAsync(Paths);
        var forks = await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
        {
            using var r = await c.Client.PostAsync("/v1/sandboxes", Json(new { snapshot_tag = RealChildFixture.Tag, n = 1 }));
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            return (await r.Content.ReadFromJsonAsync<JsonElement>())[0].GetProperty("id").GetString()!;
        }));
        Assert.Equal(3, forks.Distinct().Count());
        var evals = await Task.WhenAll(Enumerable.Range(0, 24).Select(async i =>
        {
            var id = forks[i % forks.Length];
            var e = await Post<JsonElement>(c, $"/v1/sandboxes/{id}/eval", new { code = $"{i} * {i}" });
            return (i, e.GetProperty("result").GetString());
        }));
        Assert.All(evals, e => Assert.Equal((e.i * e.i).ToString(System.Globalization.CultureInfo.InvariantCulture), e.Item2));
        var metrics = await c.Client.GetStringAsync("/metrics");
        Assert.Contains("forkd_agent_calls_total{action=\"eval\",result=\"ok\"} 24", metrics, StringComparison.Ordinal);
        Assert.Contains("\nforkd_sandboxes_active 3\n", metrics, StringComparison.Ordinal);
        await Task.WhenAll(forks.Select(id => c.Client.DeleteAsync($"/v1/sandboxes/{id}")));
        Assert.Empty(new ChildRegistry(Paths).List());
    }

    [Fact]
    public async Task Children_survive_a_restart_of_the_service_and_are_driven_by_the_next_one()
    {
        string id;
        int pid;
        await using (var first = await TestController.StartAsync(Paths))
        {
            var created = await Post<JsonElement>(first, "/v1/sandboxes", new { snapshot_tag = RealChildFixture.Tag });
            id = created[0].GetProperty("id").GetString()!;
            pid = created[0].GetProperty("pid").GetInt32();
            await Post<JsonElement>(first, $"/v1/sandboxes/{id}/eval", new { code = "survivor = 'still here'" });
        }

        Assert.True(ProcessControl.IsAlive(pid)); // stopping the service leaves its children running
        await using var second = await TestController.StartAsync(Paths);
        var info = await second.Client.GetFromJsonAsync<JsonElement>($"/v1/sandboxes/{id}");
        Assert.Equal("running", info.GetProperty("state").GetString());
        var eval = await Post<JsonElement>(second, $"/v1/sandboxes/{id}/eval", new { code = "survivor" });
        Assert.Equal("still here", eval.GetProperty("value").GetString()); // the same VM, its state kept
        using var deleted = await second.Client.DeleteAsync($"/v1/sandboxes/{id}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Null(new ChildRegistry(Paths).Get(id));
    }

    [Fact]
    public async Task The_python_client_written_from_the_spec_exercises_every_route()
    {
        var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var tokenFile = _fixture.Temp.File("py-token", token);
        await using var c = await TestController.StartAsync(Paths, new ControllerOptions { TokenFile = tokenFile }, token);
        var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(RealChildFixture.RepoRoot, "tests/service/exercise.py"), c.Address.ToString().TrimEnd('/'), tokenFile, RealChildFixture.Tag })
        {
            start.ArgumentList.Add(a);
        }

        using var python = Process.Start(start)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        var output = await stdout + await stderr;
        Assert.True(python.ExitCode == 0, output);
        Assert.Matches(@"(?m)^\d+ passed, 0 failed$", output);
        Assert.DoesNotContain("FAIL", output, StringComparison.Ordinal);
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static async Task<T> Post<T>(TestController c, string path, object? body)
    {
        using var response = await c.Client.PostAsync(path, body is null ? null : Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {path}: {(int)response.StatusCode} {text}");
        return JsonSerializer.Deserialize<T>(text)!;
    }
}
