using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Forkd.Core.Guest;

// PLACEHOLDER until the guest branch lands: the same shape as the real AgentClient (line JSON over a stream).
public sealed record AgentPingResult(JsonObject Raw);

public sealed record AgentEvalResult(string? Repr, string? ResultJson, string? Error, string? Traceback);

public sealed record AgentExecResult(string Stdout, string Stderr, int ExitCode, string? Error);

public sealed class AgentClient : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly StreamReader _reader;

    public AgentClient(Stream stream)
    {
        _stream = stream;
        _reader = new StreamReader(stream, new UTF8Encoding(false), false, 4096, true);
    }

    public static async Task<AgentClient> ConnectUnixAsync(string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await s.ConnectAsync(new UnixDomainSocketEndPoint(path), cts.Token).ConfigureAwait(false);
        }
        catch
        {
            s.Dispose();
            throw;
        }

        return new AgentClient(new NetworkStream(s, true));
    }

    private async Task<JsonObject> CallAsync(JsonObject req, CancellationToken ct)
    {
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(req.ToJsonString() + "\n"), ct).ConfigureAwait(false);
        var line = await _reader.ReadLineAsync(ct).ConfigureAwait(false) ?? throw new IOException("agent closed");
        return (JsonObject)JsonNode.Parse(line)!;
    }

    public async Task<AgentPingResult> PingAsync(CancellationToken cancellationToken) =>
        new(await CallAsync(new JsonObject { ["action"] = "ping" }, cancellationToken).ConfigureAwait(false));

    public async Task<AgentEvalResult> EvalAsync(string code, CancellationToken cancellationToken)
    {
        var r = await CallAsync(new JsonObject { ["action"] = "eval", ["code"] = code }, cancellationToken).ConfigureAwait(false);
        // Python errors carry a traceback, JavaScript ones (warm-up bridge) a stack.
        return new(r["result"]?.ToString(), r["result_json"]?.ToString(), r["error"]?.ToString(),
            r["traceback"]?.ToString() ?? (r["stack"]?.ToString() is { Length: > 0 } stack ? stack : null));
    }

    public async Task<AgentExecResult> ExecAsync(IReadOnlyList<string> argv, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(argv);
        var r = await CallAsync(new JsonObject { ["action"] = "exec", ["args"] = new JsonArray([.. argv.Select(a => (JsonNode?)a)]), ["timeout"] = timeout?.TotalSeconds }, cancellationToken).ConfigureAwait(false);
        return new(r["stdout"]?.ToString() ?? "", r["stderr"]?.ToString() ?? "", r["exit_code"]?.GetValue<int>() ?? 0, r["error"]?.ToString());
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
