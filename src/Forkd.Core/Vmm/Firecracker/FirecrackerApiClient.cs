using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>
/// Firecracker's REST API over its Unix socket. HTTP/1.1 is .NET's own <see cref="HttpClient"/>;
/// only the connection is ours: every request connects to the API socket instead of a TCP host.
/// </summary>
public sealed class FirecrackerApiClient : IDisposable
{
    /// <summary>forkd 0.1.3's per-call limit; snapshot creation writes all guest RAM and gets longer.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    public static readonly TimeSpan SnapshotCreateTimeout = TimeSpan.FromSeconds(120);

    private static readonly JsonSerializerOptions Json = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http;

    public FirecrackerApiClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = ConnectAsync,
            UseProxy = false,
            AllowAutoRedirect = false,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
        };
        _http = new HttpClient(handler)
        {
            BaseAddress = new Uri("http://localhost/"),
            Timeout = Timeout.InfiniteTimeSpan, // per call, through the token
        };
        _http.DefaultRequestHeaders.Accept.ParseAdd("application/json");
    }

    public string SocketPath { get; }

    public Task PutBootSourceAsync(FcBootSource body, CancellationToken ct) => SendAsync(HttpMethod.Put, "boot-source", body, ct);

    public Task PutDriveAsync(FcDrive body, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        return SendAsync(HttpMethod.Put, "drives/" + Uri.EscapeDataString(body.DriveId), body, ct);
    }

    public Task PatchDriveAsync(FcPartialDrive body, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        return SendAsync(HttpMethod.Patch, "drives/" + Uri.EscapeDataString(body.DriveId), body, ct);
    }

    public Task PutMachineConfigAsync(FcMachineConfiguration body, CancellationToken ct) => SendAsync(HttpMethod.Put, "machine-config", body, ct);

    public Task PutNetworkInterfaceAsync(FcNetworkInterface body, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        return SendAsync(HttpMethod.Put, "network-interfaces/" + Uri.EscapeDataString(body.IfaceId), body, ct);
    }

    public Task PutVsockAsync(FcVsock body, CancellationToken ct) => SendAsync(HttpMethod.Put, "vsock", body, ct);

    public Task PutEntropyAsync(CancellationToken ct) => SendAsync(HttpMethod.Put, "entropy", new FcEntropyDevice(), ct);

    public Task StartInstanceAsync(CancellationToken ct) => SendAsync(HttpMethod.Put, "actions", FcInstanceAction.InstanceStart, ct);

    public Task PauseAsync(CancellationToken ct) => SendAsync(HttpMethod.Patch, "vm", FcVmState.Paused, ct);

    public Task ResumeAsync(CancellationToken ct) => SendAsync(HttpMethod.Patch, "vm", FcVmState.Resumed, ct);

    public Task CreateSnapshotAsync(FcSnapshotCreate body, CancellationToken ct) =>
        SendAsync(HttpMethod.Put, "snapshot/create", body, SnapshotCreateTimeout, ct);

    public Task LoadSnapshotAsync(FcSnapshotLoad body, CancellationToken ct) => SendAsync(HttpMethod.Put, "snapshot/load", body, ct);

    public async Task<FcInstanceInfo> DescribeInstanceAsync(CancellationToken ct)
    {
        using var response = await SendCoreAsync(HttpMethod.Get, "", null, DefaultTimeout, ct).ConfigureAwait(false);
        return await response.Content.ReadFromJsonAsync<FcInstanceInfo>(Json, ct).ConfigureAwait(false)
            ?? throw Protocol(HttpMethod.Get, "/", "empty instance info");
    }

    /// <summary>Sends one call; a non-2xx answer becomes <c>FirecrackerApiError</c> carrying Firecracker's <c>fault_message</c>.</summary>
    public Task SendAsync<T>(HttpMethod method, string path, T body, CancellationToken ct) => SendAsync(method, path, body, DefaultTimeout, ct);

    /// <summary>Sends one call with its own time limit.</summary>
    public async Task SendAsync<T>(HttpMethod method, string path, T body, TimeSpan timeout, CancellationToken ct)
    {
        // A sized body: JsonContent would stream it chunked, which Firecracker's HTTP server does not take.
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, Json));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await SendCoreAsync(method, path, content, timeout, ct).ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> SendCoreAsync(HttpMethod method, string path, HttpContent? content, TimeSpan timeout, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = content };
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new ForkdException("FirecrackerApiTimeout", ForkdErrorKind.Timeout,
                $"Firecracker did not answer {method} /{path} within {timeout.TotalSeconds:0} s", SocketPath);
        }
        catch (HttpRequestException ex)
        {
            throw new ForkdException("FirecrackerApiUnreachable", ForkdErrorKind.ConnectionFailed,
                $"cannot reach the Firecracker API at {SocketPath}: {ex.Message}", SocketPath, ex)
            {
                Hint = "The Firecracker process may have exited; its console log is in the VM's work dir.",
            };
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
            throw Fault(method, "/" + path, response.StatusCode, text);
        }
    }

    private ForkdException Fault(HttpMethod method, string path, HttpStatusCode status, string body)
    {
        string? fault = null;
        try
        {
            fault = JsonSerializer.Deserialize<FcError>(body, Json)?.FaultMessage;
        }
        catch (JsonException)
        {
            // not the documented error body; report the raw text below
        }

        var detail = fault ?? (string.IsNullOrWhiteSpace(body) ? "(no body)" : body.Trim());
        return new ForkdException("FirecrackerApiError", ForkdErrorKind.ProtocolError,
            $"Firecracker rejected {method} {path} ({(int)status}): {detail}", SocketPath)
        {
            Hint = "Run Test-ForkdHost to check the Firecracker version and KVM; the VM's console log is in its work dir.",
        };
    }

    private ForkdException Protocol(HttpMethod method, string path, string what) =>
        new("FirecrackerApiError", ForkdErrorKind.ProtocolError, $"Firecracker answered {method} {path} with {what}", SocketPath);

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose() => _http.Dispose();
}
