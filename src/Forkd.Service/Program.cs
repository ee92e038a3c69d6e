using Forkd.Core;
using Forkd.Core.Store;
using Forkd.Service.Hosting;
using Forkd.Service.Mcp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Forkd.Service;

/// <summary>
/// <c>forkd-controller serve [options]</c>: forkd's REST API v1 (+ MCP over HTTP at /mcp) until SIGINT/SIGTERM, then drains.
/// <c>forkd-controller mcp</c>: the MCP server on stdin/stdout. Children outlive either: they stay in the shared registry.
/// A startup error ends with one line <c>FORKD-ERROR {json}</c> on stderr (ErrorId, message, hint) and exit code 2,
/// which Start-ForkdController turns back into a ForkdException.
/// </summary>
public static class Program
{
    public const string ErrorLinePrefix = "FORKD-ERROR ";

    public static async Task<int> Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            var paths = ForkdPaths.FromEnvironment();
            switch (args.FirstOrDefault())
            {
                case "serve":
                    return await ServeAsync(ControllerOptions.Parse(args[1..]), paths).ConfigureAwait(false);
                case "mcp":
                    return await McpStdioAsync(paths).ConfigureAwait(false);
                default:
                    await Console.Error.WriteLineAsync("usage: forkd-controller serve [--listen ADDR:PORT] [--token-file PATH] [--tls-cert PEM --tls-key PEM] " +
                                                       "[--audit-log PATH] [--max-body-bytes N] [--max-concurrent-forks N] [--max-concurrent-agent-calls N] " +
                                                       "[--max-concurrent-requests N] [--drain-seconds N] [--no-mcp]\n       forkd-controller mcp").ConfigureAwait(false);
                    return 2;
            }
        }
        catch (ForkdException ex)
        {
            var line = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string?>
            {
                ["error_id"] = ex.ErrorId, ["kind"] = ex.Kind.ToString(), ["message"] = ex.Message, ["hint"] = ex.Hint,
            });
            await Console.Error.WriteLineAsync($"forkd-controller: {ex.Message}").ConfigureAwait(false);
            await Console.Error.WriteLineAsync(ErrorLinePrefix + line).ConfigureAwait(false);
            return 2;
        }
    }

    private static async Task<int> ServeAsync(ControllerOptions options, ForkdPaths paths)
    {
        await using var app = ControllerHost.Build(options, paths);
        await app.StartAsync().ConfigureAwait(false);
        var address = ControllerHost.BoundAddress(app);
        Console.WriteLine($"forkd-controller listening on {address} ({(address.Scheme == "https" ? "HTTPS" : "plain HTTP")}), " +
                          $"auth {(options.TokenFile is null ? "off" : "bearer token")}, data dir {paths.DataDirectory}");
        await app.WaitForShutdownAsync().ConfigureAwait(false);
        Console.WriteLine("forkd-controller stopped; children keep running in the registry (Get-ForkdChild)");
        return 0;
    }

    private static async Task<int> McpStdioAsync(ForkdPaths paths)
    {
        var builder = Host.CreateApplicationBuilder();
        // stdout carries the protocol: every log line goes to stderr.
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace).SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter(ControllerHost.McpToolLogCategory, LogLevel.Critical);
        builder.Services.AddSingleton(new ServiceEngine(paths));
        builder.Services.AddMcpServer(ForkdTools.Configure).WithStdioServerTransport().WithTools<ForkdTools>();
        await builder.Build().RunAsync().ConfigureAwait(false);
        return 0;
    }
}
