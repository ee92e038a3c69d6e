using System.Net;
using System.Text;
using Forkd.Service.Hosting;

namespace Forkd.Service.Tests;

/// <summary>Per-route concurrency limits (429), the global cap (503), both with Retry-After, and the drain on stop.</summary>
public class LimitsTests
{
    [Fact]
    public async Task A_fork_over_the_route_limit_is_429_with_retry_after_and_other_routes_still_answer()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths, new ControllerOptions { MaxConcurrentForks = 1, MaxConcurrentAgentCalls = 1 });
        // A fork whose body is still arriving holds the route's only permit.
        using var stalled = new StalledJsonContent("\"snapshot_tag\":\"held\",\"n\":1}");
        var held = c.Client.PostAsync("/v1/sandboxes", stalled);
        await stalled.Started;
        await Task.Delay(200);
        using (var second = await c.Client.PostAsync("/v1/sandboxes", Json("{\"snapshot_tag\":\"other\"}")))
        {
            Assert.Equal((HttpStatusCode)429, second.StatusCode);
            Assert.Equal("1", second.Headers.GetValues("Retry-After").Single());
            Assert.Contains("\"error\":", await second.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // The agent routes have their own permits.
        using (var eval = await c.Client.PostAsync("/v1/sandboxes/sb-none/eval", Json("{\"code\":\"1\"}")))
        {
            Assert.Equal(HttpStatusCode.NotFound, eval.StatusCode);
        }

        stalled.Release();
        using (var first = await held)
        {
            Assert.Equal(HttpStatusCode.NotFound, first.StatusCode); // judged normally once its body arrived
        }

        using (var third = await c.Client.PostAsync("/v1/sandboxes", Json("{\"snapshot_tag\":\"other\"}")))
        {
            Assert.Equal(HttpStatusCode.NotFound, third.StatusCode); // the permit came back
        }
    }

    [Fact]
    public async Task Agent_calls_over_their_limit_are_429_while_forks_still_run()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths, new ControllerOptions { MaxConcurrentAgentCalls = 1 });
        using var stalled = new StalledJsonContent("\"code\":\"1\"}");
        var held = c.Client.PostAsync("/v1/sandboxes/sb-held/eval", stalled);
        await stalled.Started;
        await Task.Delay(200);
        foreach (var path in new[] { "/v1/sandboxes/sb-other/eval", "/v1/sandboxes/sb-other/exec", "/v1/sandboxes/sb-other/ping" })
        {
            using var second = await c.Client.PostAsync(path, Json(path.EndsWith("exec", StringComparison.Ordinal) ? "{\"args\":[\"true\"]}" : "{\"code\":\"1\"}"));
            Assert.Equal((HttpStatusCode)429, second.StatusCode);
            Assert.Equal("1", second.Headers.GetValues("Retry-After").Single());
        }

        using (var fork = await c.Client.PostAsync("/v1/sandboxes", Json("{\"snapshot_tag\":\"other\"}")))
        {
            Assert.Equal(HttpStatusCode.NotFound, fork.StatusCode); // the fork route has its own permits
        }

        stalled.Release();
        using var first = await held;
        Assert.Equal(HttpStatusCode.NotFound, first.StatusCode);
    }

    [Fact]
    public async Task Over_the_global_cap_is_503_with_retry_after()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths, new ControllerOptions { MaxConcurrentRequests = 1 });
        using var stalled = new StalledJsonContent("\"code\":\"1\"}");
        var held = c.Client.PostAsync("/v1/sandboxes/sb-none/eval", stalled);
        await stalled.Started;
        await Task.Delay(200);
        using (var second = await new HttpClient { BaseAddress = c.Address }.GetAsync("/v1/snapshots"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
            Assert.True(int.Parse(second.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        }

        stalled.Release();
        using var first = await held;
        Assert.Equal(HttpStatusCode.NotFound, first.StatusCode);
    }

    [Fact]
    public async Task Stopping_drains_a_request_in_flight()
    {
        using var temp = new TempPaths();
        var c = await TestController.StartAsync(temp.Paths, new ControllerOptions { DrainTimeout = TimeSpan.FromSeconds(20) });
        using var stalled = new StalledJsonContent("\"snapshot_tag\":\"drained\"}");
        var held = c.Client.PostAsync("/v1/sandboxes", stalled);
        await stalled.Started;
        await Task.Delay(200);
        var stopping = c.App.StopAsync();
        await Task.Delay(500);
        Assert.False(stopping.IsCompleted); // waits for the request in flight
        stalled.Release();
        using (var response = await held)
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode); // answered, not cut off
            Assert.Contains("drained", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await stopping.WaitAsync(TimeSpan.FromSeconds(20));
        await c.DisposeAsync();
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
