using System.Net;
using System.Text;
using System.Text.Json;
using Forkd.Service.Hosting;

namespace Forkd.Service.Tests;

/// <summary>forkd's routes, status codes and bodies without a VM: hostile input, body limits, metrics, forkd's extractor errors.</summary>
public class ApiTests
{
    public static TheoryData<string> HostileNames => new()
    {
        "..x", "%2E%2E%2Fetc", // a bare ".." segment is removed by URI normalisation (client and Kestrel) before routing
        "..%2F..%2Fetc%2Fpasswd", "..%5C..", ".hidden", "-rf", "a%2Fb", "a%00b", "a%0Ab", "%C3%A9t%C3%A9", "a%20b", "a%5Cb", "~root",
        new string('a', 65), "%2Fetc%2Fpasswd", "a:b", "a*b",
    };

    [Theory]
    [MemberData(nameof(HostileNames))]
    public async Task Hostile_tags_and_ids_are_400_on_every_route(string name)
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths);
        var requests = new List<HttpRequestMessage>
        {
            new(HttpMethod.Get, $"/v1/snapshots/{name}/info"),
            new(HttpMethod.Delete, $"/v1/snapshots/{name}"),
            new(HttpMethod.Get, $"/v1/sandboxes/{name}"),
            new(HttpMethod.Delete, $"/v1/sandboxes/{name}"),
            new(HttpMethod.Post, $"/v1/sandboxes/{name}/ping"),
            new(HttpMethod.Post, $"/v1/sandboxes/{name}/exec") { Content = Json("{\"args\":[\"true\"]}") },
            new(HttpMethod.Post, $"/v1/sandboxes/{name}/eval") { Content = Json("{\"code\":\"1\"}") },
            new(HttpMethod.Post, $"/v1/sandboxes/{name}/branch"),
            new(HttpMethod.Post, "/v1/sandboxes") { Content = Json(JsonSerializer.Serialize(new { snapshot_tag = Uri.UnescapeDataString(name), n = 1 })) },
        };
        foreach (var request in requests)
        {
            using (request)
            using (var response = await c.Client.SendAsync(request))
            {
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{request.Method} {request.RequestUri}: {(int)response.StatusCode} {text}");
                if (text.Length == 0 && request.Content is null or { Headers.ContentLength: < 100 } && name.Contains("%00", StringComparison.Ordinal))
                {
                    continue; // Kestrel itself refuses a NUL in the request line (400, no body) before any route runs
                }

                using var body = JsonDocument.Parse(text);
                Assert.False(string.IsNullOrEmpty(body.RootElement.GetProperty("error").GetString()));
                Assert.StartsWith("Invalid", body.RootElement.GetProperty("error_id").GetString(), StringComparison.Ordinal);
            }
        }

        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(temp.Paths.DataDirectory, "*", SearchOption.AllDirectories),
            p => !p.Contains("/locks", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../../etc")]
    [InlineData("/etc/passwd")]
    [InlineData("")]
    public async Task Hostile_snapshot_tags_in_a_fork_body_are_400(string tag)
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", JsonSerializer.Serialize(new { snapshot_tag = tag }), 400, "invalid tag");
    }

    [Fact]
    public async Task Forkds_status_codes_for_missing_things_and_bad_bodies()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":\"does-not-exist\",\"n\":1}", 404, "does-not-exist");
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":\"t\",\"n\":0}", 400, "n must be ≥ 1");
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":\"t\",\"n\":1001}", 400, "n must be ≤ 1000 (sanity cap)");
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":\"t\",\"memory_limit_mib\":1}", 400, "memory_limit_mib");
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"n\":1}", 422, "snapshot_tag");
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":5}", 422, null);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{not json", 400, null);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "[1,2]", 422, null);
        using (var noType = await c.Client.PostAsync("/v1/sandboxes", new StringContent("{\"snapshot_tag\":\"t\"}", Encoding.UTF8, "text/plain")))
        {
            Assert.Equal(HttpStatusCode.UnsupportedMediaType, noType.StatusCode);
        }

        await Expect(c, HttpMethod.Get, "/v1/sandboxes/sb-missing", null, 404, "sandbox sb-missing not found");
        await Expect(c, HttpMethod.Delete, "/v1/sandboxes/sb-missing", null, 404, null);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes/sb-missing/ping", null, 404, null);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes/sb-missing/exec", "{\"args\":[]}", 404, null);
        await Expect(c, HttpMethod.Post, "/v1/sandboxes/sb-missing/eval", "{\"code\":\"1\"}", 404, null);
        await Expect(c, HttpMethod.Delete, "/v1/snapshots/nope", null, 404, "nope");
        await Expect(c, HttpMethod.Get, "/v1/snapshots/nope/info", null, 404, "nope");
        using (var list = await c.Client.GetAsync("/v1/sandboxes"))
        {
            Assert.Equal("[]", await list.Content.ReadAsStringAsync());
            Assert.Equal("application/json", list.Content.Headers.ContentType?.MediaType);
        }

        using (var unknown = await c.Client.GetAsync("/v2/nothing"))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Equal("", await unknown.Content.ReadAsStringAsync());
        }

        using (var wrongMethod = await c.Client.PutAsync("/v1/sandboxes", Json("{}")))
        {
            Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        }
    }

    [Fact]
    public async Task Oversized_bodies_are_413_whether_or_not_they_say_their_length()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths, new ControllerOptions { MaxRequestBodyBytes = 64 * 1024 });
        var big = "{\"code\":\"" + new string('x', 200 * 1024) + "\"}";
        using (var declared = await c.Client.PostAsync("/v1/sandboxes/sb-x/eval", Json(big)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
            Assert.Contains("over the limit", await declared.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var chunked = new StreamContent(new NoLengthStream(Encoding.UTF8.GetBytes("{\"snapshot_tag\":\"" + new string('y', 200 * 1024) + "\"}")));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var streamed = await c.Client.PostAsync("/v1/sandboxes", chunked);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);

        // A body just under the limit is read and judged on its content.
        await Expect(c, HttpMethod.Post, "/v1/sandboxes", "{\"snapshot_tag\":\"" + new string('z', 60) + "\",\"pad\":\"" + new string(' ', 60 * 1024) + "\"}", 404, null);
    }

    [Fact]
    public async Task Metrics_use_forkds_names_and_a_maintained_exposition()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths);
        Directory.CreateDirectory(Path.Combine(temp.Paths.SnapshotsDirectory, "cli-made"));
        using (await c.Client.GetAsync("/v1/snapshots"))
        {
        }

        using var response = await c.Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        Assert.Contains("version=0.0.4", response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("\nforkd_snapshots_total 1\n", text, StringComparison.Ordinal); // snapshots made outside the service count too
        Assert.Contains("\nforkd_sandboxes_active 0\n", text, StringComparison.Ordinal);
        Assert.Contains("forkd_build_info{version=\"", text, StringComparison.Ordinal);
        Assert.Contains("forkd_branch_concurrency_cap", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE http_request_duration_seconds histogram", text, StringComparison.Ordinal);
        Assert.Contains("endpoint=\"/v1/snapshots\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Snapshots_name_backend_and_accelerator_in_forkds_lower_case()
    {
        using var temp = new TempPaths();
        await using var c = await TestController.StartAsync(temp.Paths);
        foreach (var (tag, metadata) in new[] { ("ours", new Forkd.Core.Store.SnapshotMetadata { Backend = "qemu", Accelerator = "tcg" }), ("forkd-made", null) })
        {
            var dir = Path.Combine(temp.Paths.SnapshotsDirectory, tag);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, "vmstate"), new byte[16]);
            File.WriteAllBytes(Path.Combine(dir, "memory.bin"), new byte[4096]);
            metadata?.Save(dir);
        }

        using var response = await c.Client.GetAsync("/v1/snapshots");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var byTag = json.RootElement.EnumerateArray().ToDictionary(s => s.GetProperty("tag").GetString()!);

        Assert.Equal("qemu", byTag["ours"].GetProperty("backend").GetString());
        Assert.Equal("tcg", byTag["ours"].GetProperty("accelerator").GetString());
        Assert.Equal("firecracker", byTag["forkd-made"].GetProperty("backend").GetString());
        Assert.Equal(JsonValueKind.Null, byTag["forkd-made"].GetProperty("accelerator").ValueKind);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static async Task Expect(TestController c, HttpMethod method, string path, string? body, int status, string? errorFragment)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : Json(body) };
        using var response = await c.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{method} {path}: expected {status}, got {(int)response.StatusCode} {text}");
        if (errorFragment is not null)
        {
            using var json = JsonDocument.Parse(text);
            Assert.Contains(errorFragment, json.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        }
    }

    /// <summary>A stream that hides its length, so HttpClient sends it chunked.</summary>
    private sealed class NoLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
