using System.Diagnostics;
using Forkd.Service.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Forkd.Service.Hosting;

/// <summary>The middleware in front of every route: audit (outermost, so 401s are audited), load and drain gate, body size, bearer auth.</summary>
public static class ServiceGates
{
    public static void Use(WebApplication app, ControllerOptions options, BearerToken? token, AuditLog? audit)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        var inFlight = 0;
        var draining = false;
        app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.Register(() => Volatile.Write(ref draining, true));

        app.Use(async (http, next) =>
        {
            var clock = Stopwatch.StartNew();
            try
            {
                await next(http).ConfigureAwait(false);
            }
            finally
            {
                var status = http.Response.StatusCode;
                if (audit is not null && (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) || status == 401))
                {
                    audit.Write(new AuditEntry(DateTimeOffset.UtcNow, http.Request.Method, http.Request.Path.Value ?? "", status,
                        (long)clock.Elapsed.TotalMicroseconds, http.Request.Headers.UserAgent.ToString(),
                        http.Connection.RemoteIpAddress?.ToString() ?? "", http.Items["forkd.auth"] as string ?? "none",
                        http.Items[ApiErrors.ItemKey] as string));
                }
            }
        });

        app.Use(async (http, next) =>
        {
            if (Volatile.Read(ref draining))
            {
                await Reject(http, StatusCodes.Status503ServiceUnavailable, "ShuttingDown", "the controller is shutting down", 5).ConfigureAwait(false);
                return;
            }

            if (Interlocked.Increment(ref inFlight) > options.MaxConcurrentRequests)
            {
                Interlocked.Decrement(ref inFlight);
                await Reject(http, StatusCodes.Status503ServiceUnavailable, "Overloaded",
                    $"more than {options.MaxConcurrentRequests} requests in flight", 1).ConfigureAwait(false);
                return;
            }

            try
            {
                await next(http).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref inFlight);
            }
        });

        app.Use(async (http, next) =>
        {
            var path = http.Request.Path.Value;
            if (token is not null && path is not ("/healthz" or "/healthz/"))
            {
                var header = http.Request.Headers.Authorization.ToString();
                // forkd: exactly "Bearer " (capital B, one space), the rest trimmed; no WWW-Authenticate header.
                var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header.AsSpan(7).Trim() : [];
                if (presented.IsEmpty)
                {
                    http.Items["forkd.auth"] = "missing";
                    await Reject(http, StatusCodes.Status401Unauthorized, "MissingBearerToken", "missing bearer token", null).ConfigureAwait(false);
                    return;
                }

                if (!token.Matches(presented))
                {
                    http.Items["forkd.auth"] = "invalid";
                    await Reject(http, StatusCodes.Status401Unauthorized, "InvalidBearerToken", "invalid bearer token", null).ConfigureAwait(false);
                    return;
                }

                http.Items["forkd.auth"] = "token";
            }

            if (http.Request.ContentLength > options.MaxRequestBodyBytes)
            {
                await Reject(http, StatusCodes.Status413PayloadTooLarge, "RequestBodyTooLarge",
                    $"request body of {http.Request.ContentLength} bytes is over the limit of {options.MaxRequestBodyBytes}", null).ConfigureAwait(false);
                return;
            }

            await next(http).ConfigureAwait(false);
        });
    }

    public static async Task Reject(HttpContext http, int status, string errorId, string message, int? retryAfterSeconds)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (retryAfterSeconds is { } seconds)
        {
            http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (status == StatusCodes.Status413PayloadTooLarge || status == StatusCodes.Status503ServiceUnavailable)
        {
            http.Response.Headers.Connection = "close"; // do not read (or wait for) the rest of a body we refuse
        }

        await ApiErrors.Error(http, status, errorId, message).ExecuteAsync(http).ConfigureAwait(false);
    }
}
