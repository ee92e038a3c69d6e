using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Forkd.Core;
using Forkd.Service.Hosting;

namespace Forkd.Service.Tests;

/// <summary>Bearer auth over real HTTP: every failure mode is a 401 with forkd's body, audited; only /healthz is open.</summary>
public class AuthTests
{
    private const string Token = "s3cret-token-0123456789abcdef";

    [Fact]
    public async Task Every_failure_mode_is_401_with_forkds_body_and_is_audited()
    {
        using var temp = new TempPaths();
        var tokenFile = temp.File("token", Token + "\n");
        var audit = temp.File("audit.log");
        await using var controller = await TestController.StartAsync(temp.Paths, new ControllerOptions { TokenFile = tokenFile, AuditLogPath = audit });
        var cases = new (string? Header, string Error)[]
        {
            (null, "missing bearer token"),
            ("Basic " + Convert.ToBase64String("u:p"u8.ToArray()), "missing bearer token"),
            ("bearer " + Token, "missing bearer token"), // forkd: exactly "Bearer "
            ("Bearer", "missing bearer token"),
            ("Bearer    ", "missing bearer token"),
            ("Bearer " + Token[..^1] + "X", "invalid bearer token"), // same length, last byte differs
            ("Bearer " + Token[..^1], "invalid bearer token"), // a prefix
            ("Bearer " + Token + "x", "invalid bearer token"), // longer
            ("Bearer " + new string('a', 10000), "invalid bearer token"),
            ("Bearer " + Token.ToUpperInvariant(), "invalid bearer token"),
        };
        foreach (var (header, error) in cases)
        {
            foreach (var path in new[] { "/v1/snapshots", "/version", "/metrics", "/no/such/route" })
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                if (header is not null)
                {
                    request.Headers.TryAddWithoutValidation("Authorization", header);
                }

                using var response = await controller.Client.SendAsync(request);
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{header} {path}: {response.StatusCode}");
                Assert.False(response.Headers.Contains("WWW-Authenticate"));
                using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                Assert.Equal(error, body.RootElement.GetProperty("error").GetString());
            }
        }

        // Mutating requests without a token never reach a handler.
        using (var delete = await controller.Client.DeleteAsync("/v1/sandboxes/anything"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, delete.StatusCode);
        }

        foreach (var open in new[] { "/healthz", "/healthz/" })
        {
            using var health = await controller.Client.GetAsync(open);
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Equal("{\"ok\":true}", await health.Content.ReadAsStringAsync());
        }

        controller.Client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        using (var ok = await controller.Client.GetAsync("/version"))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Contains("\"api\":\"v1\"", await ok.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await controller.DisposeAsync();
        var lines = File.ReadAllLines(audit).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(cases.Length * 4 + 1, lines.Count(l => l.GetProperty("status").GetInt32() == 401));
        var deleteLine = lines.Single(l => l.GetProperty("method").GetString() == "DELETE");
        Assert.Equal("/v1/sandboxes/anything", deleteLine.GetProperty("path").GetString());
        Assert.Equal("missing", deleteLine.GetProperty("auth").GetString());
        Assert.Equal("127.0.0.1", deleteLine.GetProperty("remote").GetString());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", deleteLine.GetProperty("ts").GetString());
        Assert.True(deleteLine.GetProperty("latency_us").GetInt64() >= 0);
        Assert.DoesNotContain(lines, l => l.GetProperty("path").GetString() == "/version" && l.GetProperty("status").GetInt32() == 200);
        Assert.DoesNotContain(Token, File.ReadAllText(audit), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "TokenEmpty")]
    [InlineData("   \n", "TokenEmpty")]
    [InlineData("short-token", "TokenTooShort")]
    [InlineData("123456789012345", "TokenTooShort")]
    [InlineData("REPLACE_ME_with_a_long_random_token", "TokenPlaceholder")]
    [InlineData("CHANGE_ME-0123456789abcdef0123", "TokenPlaceholder")]
    [InlineData("change_me-0123456789abcdef0123", "TokenPlaceholder")]
    public void Weak_tokens_are_refused_at_start(string content, string errorId)
    {
        using var temp = new TempPaths();
        var options = new ControllerOptions { TokenFile = temp.File("token", content), Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        var ex = Assert.Throws<ForkdException>(() => ControllerHost.Build(options, temp.Paths));
        Assert.Equal(errorId, ex.ErrorId);
        Assert.Equal(ForkdErrorKind.InvalidArgument, ex.Kind);
        Assert.NotNull(ex.Hint);
    }

    [Fact]
    public void A_sixteen_byte_token_is_enough_and_compares_by_value_only()
    {
        var token = BearerToken.FromText("0123456789abcdef", "test");
        Assert.True(token.Matches("0123456789abcdef"));
        Assert.False(token.Matches("0123456789abcdeF"));
        Assert.False(token.Matches("0123456789abcde"));
        Assert.False(token.Matches("0123456789abcdef0"));
        Assert.False(token.Matches(""));
    }

    [Theory]
    [InlineData("0.0.0.0:0")]
    [InlineData("[::]:0")]
    [InlineData("192.0.2.10:8889")]
    public void A_non_loopback_bind_without_a_token_is_refused(string listen)
    {
        using var temp = new TempPaths();
        var ex = Assert.Throws<ForkdException>(() => ControllerHost.Build(new ControllerOptions { Listen = ControllerOptions.ParseEndpoint(listen) }, temp.Paths));
        Assert.Equal("UnauthenticatedNonLoopbackBind", ex.ErrorId);
    }

    [Fact]
    public void The_token_is_never_an_option()
    {
        var ex = Assert.Throws<ForkdException>(() => ControllerOptions.Parse(["--token", Token]));
        Assert.Equal("TokenOnCommandLine", ex.ErrorId);
        Assert.Contains("--token-file", ex.Hint, StringComparison.Ordinal);
    }
}
