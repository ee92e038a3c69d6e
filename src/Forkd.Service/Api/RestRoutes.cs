using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Service.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Forkd.Service.Api;

/// <summary>forkd's REST API v1 (spec 5.4, 10.1 and 10.6), over <see cref="ServiceEngine"/>.</summary>
public static class RestRoutes
{
    public const string ForkPolicy = "forks";
    public const string AgentPolicy = "agent-calls";
    public const string Version = "0.5.3";

    private static readonly TimeSpan EvalTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(3);

    public static void Map(IEndpointRouteBuilder app, ServiceEngine engine, ControllerOptions options, ServiceMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        app.MapGet("/healthz", () => Results.Json(new HealthBody(true))); // also matches /healthz/ (exempt from auth too, forkd #197)
        app.MapGet("/version", () => Results.Json(new VersionBody(Version, "v1")));

        var v1 = app.MapGroup("/v1");
        v1.MapGet("/snapshots", () => Results.Json(engine.ListSnapshots().Select(SnapshotBody.From)));
        v1.MapGet("/snapshots/{tag}/info", (HttpContext http, string tag) => Guard(http, "snapshot-info", () =>
        {
            var snapshot = engine.GetSnapshot(tag);
            return Task.FromResult(Results.Json(new SnapshotInfoBody
            {
                Snapshot = SnapshotBody.From(snapshot),
                Chain = [snapshot.Tag],
                RunningChildren = engine.Registry.RunningChildrenOf(snapshot.Tag),
            }));
        }));
        v1.MapDelete("/snapshots/{tag}", (HttpContext http, string tag) => Guard(http, "rm", () =>
        {
            engine.RemoveSnapshot(tag);
            return Task.FromResult(Results.NoContent());
        }));

        v1.MapGet("/sandboxes", () => Results.Json(engine.ListChildren().OrderBy(c => c.Id, StringComparer.Ordinal).Select(SandboxBody.From)));
        v1.MapPost("/sandboxes", (Delegate)((HttpContext http) => CreateSandboxesAsync(http, engine, options, metrics))).RequireRateLimiting(ForkPolicy);
        v1.MapGet("/sandboxes/{id}", (HttpContext http, string id) => Guard(http, "get", () => Task.FromResult(Results.Json(SandboxBody.From(engine.GetChild(id))))));
        v1.MapDelete("/sandboxes/{id}", (HttpContext http, string id) => Guard(http, "kill", async () =>
        {
            await engine.StopChildAsync(id).ConfigureAwait(false);
            return Results.NoContent();
        }));

        v1.MapPost("/sandboxes/{id}/ping", (HttpContext http, string id) => Guard(http, "ping", async () =>
            Results.Json(await engine.PingAsync(engine.GetChild(id), PingTimeout, http.RequestAborted).ConfigureAwait(false)))).RequireRateLimiting(AgentPolicy);
        v1.MapPost("/sandboxes/{id}/exec", (HttpContext http, string id) => ExecAsync(http, id, engine, metrics)).RequireRateLimiting(AgentPolicy);
        v1.MapPost("/sandboxes/{id}/eval", (HttpContext http, string id) => EvalAsync(http, id, engine, metrics)).RequireRateLimiting(AgentPolicy);
        v1.MapPost("/sandboxes/{id}/branch", (HttpContext http, string id) => Guard(http, "branch", () => BranchAsync(http, id, engine)));
    }

    /// <summary>forkd's BRANCH (spec 10.1, 10.3): pause, snapshot to a new tag (Full, or Diff with <c>"diff": true</c>), resume.</summary>
    private static async Task<IResult> BranchAsync(HttpContext http, string id, ServiceEngine engine)
    {
        var child = engine.GetChild(id); // 400/404 first, like every sandbox route
        BranchRequest? request = new();
        if (http.Request.ContentLength is > 0 || http.Request.Headers.ContentType.Count > 0)
        {
            (request, var error) = await ApiErrors.ReadJsonAsync<BranchRequest>(http).ConfigureAwait(false);
            if (error is not null)
            {
                return error;
            }
        }

        var tag = request!.Tag ?? $"branch-{child.Id}-{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}";
        if (TagRule.Check(tag) is { } problem)
        {
            return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidTag", problem);
        }

        var result = await engine.Engine.Checkpoints.CheckpointAsync(new CheckpointRequest
        {
            ChildId = child.Id,
            Tag = tag,
            Mode = request.Diff == true ? SnapshotKinds.Diff : SnapshotKinds.Full,
            CreatedBy = "Forkd service (branch)",
        }, null, http.RequestAborted).ConfigureAwait(false);
        return Results.Json(new BranchBody
        {
            Snapshot = SnapshotBody.From(result.Snapshot),
            PauseMs = result.PauseTime.TotalMilliseconds,
            BytesWritten = result.BytesWritten,
            Mode = result.Mode == SnapshotKinds.Diff ? "diff" : "full",
            SourceSandboxId = result.SourceChildId,
        }, statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> CreateSandboxesAsync(HttpContext http, ServiceEngine engine, ControllerOptions options, ServiceMetrics metrics)
    {
        var (request, error) = await ApiErrors.ReadJsonAsync<CreateSandboxRequest>(http).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        if (request!.SnapshotTag is null)
        {
            return ApiErrors.Error(http, StatusCodes.Status422UnprocessableEntity, "InvalidRequestShape", "missing field `snapshot_tag`");
        }

        if (TagRule.Check(request.SnapshotTag) is { } tagProblem)
        {
            return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidTag", tagProblem);
        }

        if (request.N < 1)
        {
            return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidCount", "n must be ≥ 1");
        }

        if (request.N > options.MaxChildrenPerRequest)
        {
            return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidCount", $"n must be ≤ {options.MaxChildrenPerRequest} (sanity cap)");
        }

        if (request.MemoryLimitMiB is < 16 or > 1048576)
        {
            return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidMemoryLimit", "memory_limit_mib must be between 16 and 1048576");
        }

        return await Guard(http, "restore_many", async () =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                var children = await engine.ForkAsync(new ForkRequest
                {
                    Tag = request.SnapshotTag,
                    Count = request.N,
                    MemoryLimitMiB = request.MemoryLimitMiB,
                    Network = request.PerChildNetns,
                }, http.RequestAborted).ConfigureAwait(false);
                metrics.Forked(children.Count, clock.Elapsed, succeeded: true);
                return Results.Json(children.Select(SandboxBody.From), statusCode: StatusCodes.Status201Created);
            }
            catch (ForkdException)
            {
                metrics.Forked(request.N, clock.Elapsed, succeeded: false);
                throw;
            }
        }).ConfigureAwait(false);
    }

    private static async Task<IResult> ExecAsync(HttpContext http, string id, ServiceEngine engine, ServiceMetrics metrics)
    {
        var (request, error) = await ApiErrors.ReadJsonAsync<ExecRequest>(http).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        return await Guard(http, "exec", async () =>
        {
            var child = engine.GetChild(id); // unknown id is 404 before an empty argv is 400 (forkd's order)
            if (request!.Args is null)
            {
                return ApiErrors.Error(http, StatusCodes.Status422UnprocessableEntity, "InvalidRequestShape", "missing field `args`");
            }

            if (request.Args.Count == 0)
            {
                return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "ExecArgsEmpty", "args must contain at least one element");
            }

            if (request.TimeoutSecs is < 1 or > 86400)
            {
                return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "InvalidTimeout", "timeout_secs must be between 1 and 86400");
            }

            var result = await engine.ExecAsync(child, request.Args, TimeSpan.FromSeconds(request.TimeoutSecs), http.RequestAborted).ConfigureAwait(false);
            metrics.AgentCall("exec", result.Error is null);
            return Results.Json(ExecResponse.From(result));
        }).ConfigureAwait(false);
    }

    private static async Task<IResult> EvalAsync(HttpContext http, string id, ServiceEngine engine, ServiceMetrics metrics)
    {
        var (request, error) = await ApiErrors.ReadJsonAsync<EvalRequest>(http).ConfigureAwait(false);
        if (error is not null)
        {
            return error;
        }

        return await Guard(http, "eval", async () =>
        {
            var child = engine.GetChild(id);
            if (string.IsNullOrEmpty(request!.Code))
            {
                return ApiErrors.Error(http, StatusCodes.Status400BadRequest, "EvalCodeEmpty", "code must not be empty");
            }

            var timeout = request.TimeoutSecs is >= 1 and <= 86400 ? TimeSpan.FromSeconds(request.TimeoutSecs) : EvalTimeout;
            var result = await engine.EvalAsync(child, request.Code, timeout, http.RequestAborted).ConfigureAwait(false);
            metrics.AgentCall("eval", result.Error is null);
            return Results.Json(EvalResponse.From(result));
        }).ConfigureAwait(false);
    }

    /// <summary>Runs a handler; engine errors become forkd's error bodies with the right status.</summary>
    private static async Task<IResult> Guard(HttpContext http, string operation, Func<Task<IResult>> handler)
    {
        try
        {
            return await handler().ConfigureAwait(false);
        }
        catch (ForkdException ex)
        {
            return ApiErrors.From(http, ex, operation);
        }
    }
}
