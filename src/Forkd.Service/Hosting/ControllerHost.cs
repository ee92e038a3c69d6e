using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Threading.RateLimiting;
using Forkd.Core;
using Forkd.Core.Store;
using Forkd.Service.Api;
using Forkd.Service.Mcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Forkd.Service.Hosting;

/// <summary>Builds the controller: Kestrel (TLS optional), the gates, forkd's REST API v1, /metrics and MCP over HTTP at /mcp.</summary>
public static class ControllerHost
{
    /// <summary>The SDK logs every failed tool call with a stack trace; the error already goes back to the client as a tool error.</summary>
    public const string McpToolLogCategory = "ModelContextProtocol.Server.McpServer";

    /// <summary>Checks the options (token, TLS pair, bind safety) and builds the app. Throws <see cref="ForkdException"/> on bad settings.</summary>
    public static WebApplication Build(ControllerOptions options, ForkdPaths paths, Action<ILoggingBuilder>? logging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(paths);
        var token = options.TokenFile is null ? null : BearerToken.FromFile(options.TokenFile);
        if (token is null && !IPAddress.IsLoopback(options.Listen.Address))
        {
            throw new ForkdException("UnauthenticatedNonLoopbackBind", ForkdErrorKind.InvalidArgument,
                $"refusing to listen on {options.Listen} without a token: anyone who can reach it could start VMs", options.Listen.ToString())
            { Hint = "Pass -TokenFile (a file with at least 16 random bytes), or listen on 127.0.0.1." };
        }

        var certificate = LoadCertificate(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (logging is null)
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
            builder.Logging.AddFilter(McpToolLogCategory, LogLevel.Critical);
        }
        else
        {
            logging(builder.Logging);
        }

        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.DrainTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.Listen(options.Listen, listen =>
            {
                if (certificate is not null)
                {
                    listen.UseHttps(certificate);
                }
            });
        });

        var engine = new ServiceEngine(paths);
        var metrics = new ServiceMetrics(engine);
        builder.Services.AddSingleton(engine);
        builder.Services.AddRateLimiter(r =>
        {
            r.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            r.OnRejected = async (context, _) => await ServiceGates.Reject(context.HttpContext, StatusCodes.Status429TooManyRequests, "TooManyRequests",
                "too many requests of this kind in flight; retry later", 1).ConfigureAwait(false);
            r.AddConcurrencyLimiter(RestRoutes.ForkPolicy, c => { c.PermitLimit = options.MaxConcurrentForks; c.QueueLimit = 0; });
            r.AddConcurrencyLimiter(RestRoutes.AgentPolicy, c => { c.PermitLimit = options.MaxConcurrentAgentCalls; c.QueueLimit = 0; });
        });
        if (options.Mcp)
        {
            builder.Services.AddMcpServer(ForkdTools.Configure).WithHttpTransport(t => t.Stateless = true).WithTools<ForkdTools>();
        }

        var app = builder.Build();
        ServiceGates.Use(app, options, token, options.AuditLogPath is null ? null : new AuditLog(options.AuditLogPath));
        app.UseRouting();
        app.UseHttpMetrics(o => o.SetMetricFactory(Metrics.WithCustomRegistry(metrics.Registry)));
        app.UseRateLimiter();
        RestRoutes.Map(app, engine, options, metrics);
        app.MapMetrics("/metrics", metrics.Registry);
        if (options.Mcp)
        {
            app.MapMcp("/mcp");
        }

        return app;
    }

    /// <summary>The address Kestrel really bound (port 0 picks a free one).</summary>
    public static Uri BoundAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new Uri(address);
    }

    private static X509Certificate2? LoadCertificate(ControllerOptions options)
    {
        if (options.CertificatePath is null && options.KeyPath is null)
        {
            return null;
        }

        if (options.CertificatePath is null || options.KeyPath is null)
        {
            throw new ForkdException("TlsPairIncomplete", ForkdErrorKind.InvalidArgument, "--tls-cert and --tls-key must be supplied together")
            { Hint = "Pass both -CertificatePath and -KeyPath (PEM files)." };
        }

        try
        {
            return X509Certificate2.CreateFromPemFile(options.CertificatePath, options.KeyPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            throw new ForkdException("TlsCertificateInvalid", ForkdErrorKind.InvalidArgument,
                $"load TLS cert {options.CertificatePath} / key {options.KeyPath}: {ex.Message}", options.CertificatePath, ex);
        }
    }
}
