using System.ComponentModel;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Service.Api;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Forkd.Service.Mcp;

/// <summary>
/// MCP tools over the same engine as the REST API: an agent gets a warm sandbox (a child whose agent already
/// answered) in one <c>fork</c> call, then evals and execs in it. Engine errors become tool errors that name
/// the ErrorId and the hint.
/// </summary>
[McpServerToolType]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "Parameter names are the tools' JSON argument names, snake_case like forkd's API.")]
public sealed class ForkdTools
{
    private readonly ServiceEngine _engine;

    public ForkdTools(ServiceEngine engine) => _engine = engine;

    public static void Configure(McpServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ServerInfo = new Implementation { Name = "forkd", Version = RestRoutes.Version };
        options.ServerInstructions = "Forkd forks microVM sandboxes from warmed snapshots. Call list_snapshots, then fork with a snapshot tag: " +
                                     "it returns ready sandboxes. Run Python with eval (expressions or statements) or programs with exec, branch a sandbox into a new " +
                                     "snapshot to fork many futures from one state, and stop sandboxes when done.";
    }

    [McpServerTool(Name = "list_snapshots", ReadOnly = true, Idempotent = true), Description("Lists the snapshots sandboxes can be forked from.")]
    public IReadOnlyList<SnapshotBody> ListSnapshots() => [.. _engine.ListSnapshots().Select(SnapshotBody.From)];

    [McpServerTool(Name = "list_sandboxes", ReadOnly = true, Idempotent = true), Description("Lists the sandboxes (children), running and exited.")]
    public IReadOnlyList<SandboxBody> ListSandboxes() => [.. _engine.ListChildren().Select(SandboxBody.From)];

    [McpServerTool(Name = "fork"), Description("Forks n sandboxes from a snapshot; each is ready (its agent answered) when this returns.")]
    public async Task<IReadOnlyList<SandboxBody>> ForkAsync(
        [Description("Tag of the snapshot to fork (see list_snapshots).")] string snapshot_tag,
        [Description("How many sandboxes to start (1-64).")] int n = 1,
        [Description("Memory ceiling per sandbox in MiB (cgroups), or omit for none.")] long? memory_limit_mib = null,
        CancellationToken cancellationToken = default)
    {
        if (n is < 1 or > 64)
        {
            throw new McpException("InvalidCount: n must be between 1 and 64");
        }

        var children = await Call(() => _engine.ForkAsync(new ForkRequest { Tag = snapshot_tag, Count = n, MemoryLimitMiB = memory_limit_mib },
            cancellationToken)).ConfigureAwait(false);
        return [.. children.Select(SandboxBody.From)];
    }

    [McpServerTool(Name = "eval"), Description("Evaluates Python code in a sandbox's warm interpreter; returns the repr, the JSON value where there is one, or the error and traceback.")]
    public async Task<EvalResponse> EvalAsync(
        [Description("Sandbox id (from fork or list_sandboxes).")] string sandbox_id,
        [Description("Python expression or statements.")] string code,
        CancellationToken cancellationToken = default)
    {
        if (string.IsNullOrEmpty(code))
        {
            throw new McpException("EvalCodeEmpty: code must not be empty");
        }

        return EvalResponse.From(await Call(() => _engine.EvalAsync(_engine.GetChild(sandbox_id), code, TimeSpan.FromSeconds(30), cancellationToken)).ConfigureAwait(false));
    }

    [McpServerTool(Name = "exec"), Description("Runs a program in a sandbox (argv, no shell); returns stdout, stderr and the exit code.")]
    public async Task<ExecResponse> ExecAsync(
        [Description("Sandbox id.")] string sandbox_id,
        [Description("Program and arguments, e.g. [\"python3\", \"-c\", \"print(1)\"].")] string[] args,
        [Description("Seconds the program may run (1-3600).")] int timeout_secs = 30,
        CancellationToken cancellationToken = default)
    {
        if (args is null || args.Length == 0)
        {
            throw new McpException("ExecArgsEmpty: args must contain at least one element");
        }

        var timeout = TimeSpan.FromSeconds(Math.Clamp(timeout_secs, 1, 3600));
        return ExecResponse.From(await Call(() => _engine.ExecAsync(_engine.GetChild(sandbox_id), args, timeout, cancellationToken)).ConfigureAwait(false));
    }

    [McpServerTool(Name = "ping", ReadOnly = true), Description("Pings a sandbox's guest agent; returns its reply (pid, language, versions).")]
    public async Task<string> PingAsync([Description("Sandbox id.")] string sandbox_id, CancellationToken cancellationToken = default) =>
        (await Call(() => _engine.PingAsync(_engine.GetChild(sandbox_id), TimeSpan.FromSeconds(3), cancellationToken)).ConfigureAwait(false)).ToJsonString();

    [McpServerTool(Name = "branch"), Description("Snapshots a running sandbox under a new tag (it keeps running): fork the tag to explore from that instant. " +
        "diff=true saves only the pages written since the sandbox was forked.")]
    public async Task<SnapshotBody> BranchAsync([Description("Sandbox id.")] string sandbox_id, [Description("New snapshot tag.")] string tag,
        [Description("Save only what changed since the fork (a diff over the parent's memory).")] bool diff = false,
        CancellationToken cancellationToken = default)
    {
        var result = await Call(() => _engine.Engine.Checkpoints.CheckpointAsync(new Forkd.Core.Engine.CheckpointRequest
        {
            ChildId = _engine.GetChild(sandbox_id).Id,
            Tag = tag,
            Mode = diff ? Forkd.Core.Vmm.SnapshotKinds.Diff : Forkd.Core.Vmm.SnapshotKinds.Full,
            CreatedBy = "Forkd MCP (branch)",
        }, null, cancellationToken)).ConfigureAwait(false);
        return SnapshotBody.From(result.Snapshot);
    }

    [McpServerTool(Name = "stop", Destructive = true, Idempotent = true), Description("Stops a sandbox and removes everything it had (process, sockets, work dir, registry record).")]
    public async Task<string> StopAsync([Description("Sandbox id.")] string sandbox_id)
    {
        await Call(async () =>
        {
            await _engine.StopChildAsync(sandbox_id).ConfigureAwait(false);
            return true;
        }).ConfigureAwait(false);
        return $"stopped {sandbox_id}";
    }

    private static async Task<T> Call<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (ForkdException ex)
        {
            throw new McpException(ex.Hint is null ? $"{ex.ErrorId}: {ex.Message}" : $"{ex.ErrorId}: {ex.Message} ({ex.Hint})", ex);
        }
    }
}
