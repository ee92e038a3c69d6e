using System.Net;
using System.Net.Http.Headers;
using Forkd.Core.Store;
using Forkd.Service.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace Forkd.Service.Tests;

/// <summary>A real controller (Kestrel on a free loopback port) over a private data dir, and an HttpClient for it.</summary>
internal sealed class TestController : IAsyncDisposable
{
    private TestController(WebApplication app, Uri address, HttpClient client)
    {
        App = app;
        Address = address;
        Client = client;
    }

    public WebApplication App { get; }

    public Uri Address { get; }

    public HttpClient Client { get; }

    public static async Task<TestController> StartAsync(ForkdPaths paths, ControllerOptions? options = null, string? token = null,
        HttpMessageHandler? handler = null)
    {
        options ??= new ControllerOptions();
        options = options with { Listen = new IPEndPoint(IPAddress.Loopback, 0) };
        var app = ControllerHost.Build(options, paths, l => l.SetMinimumLevel(LogLevel.None));
        await app.StartAsync();
        var address = ControllerHost.BoundAddress(app);
        var client = new HttpClient(handler ?? new SocketsHttpHandler(), disposeHandler: true) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(3) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return new TestController(app, address, client);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>A private data dir (and temp root) per test, removed afterwards.</summary>
public sealed class TempPaths : IDisposable
{
    public TempPaths()
    {
        Root = Directory.CreateTempSubdirectory("forkd-svc-test-").FullName;
        Paths = new ForkdPaths(Path.Combine(Root, "data"), ForkdPaths.ResolveTempDirectory());
        Directory.CreateDirectory(Paths.DataDirectory);
    }

    public string Root { get; }

    public ForkdPaths Paths { get; }

    public string File(string name, string? content = null)
    {
        var path = Path.Combine(Root, name);
        if (content is not null)
        {
            System.IO.File.WriteAllText(path, content);
        }

        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A request body that sends "{" and then waits: the request stays in flight until <see cref="Release"/>.</summary>
internal sealed class StalledJsonContent : HttpContent
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string _rest;

    public StalledJsonContent(string rest)
    {
        _rest = rest;
        Headers.ContentType = new MediaTypeHeaderValue("application/json");
    }

    public Task Started => _started.Task;

    public void Release() => _release.TrySetResult();

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        await stream.WriteAsync("{"u8.ToArray());
        await stream.FlushAsync();
        _started.TrySetResult();
        await _release.Task;
        await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(_rest));
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
