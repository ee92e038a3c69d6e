using System.Text.Json.Serialization;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;

namespace Forkd.Service.Api;

// forkd's API v1 types (spec 5.4): same names, field order and null handling (Option fields are null, never omitted).
// Fields after forkd's are Forkd's additions; forkd's clients ignore unknown keys.

public sealed record ErrorBody(
    [property: JsonPropertyName("error")] string Error,
    [property: JsonPropertyName("error_id")] string ErrorId,
    [property: JsonPropertyName("hint")] string? Hint = null);

public sealed record HealthBody([property: JsonPropertyName("ok")] bool Ok);

public sealed record VersionBody([property: JsonPropertyName("version")] string Version, [property: JsonPropertyName("api")] string Api);

public sealed record SnapshotBody
{
    [JsonPropertyName("tag")] public required string Tag { get; init; }

    [JsonPropertyName("dir")] public required string Dir { get; init; }

    [JsonPropertyName("created_at_unix")] public long CreatedAtUnix { get; init; }

    [JsonPropertyName("bootable")] public bool Bootable { get; init; }

    [JsonPropertyName("size_bytes")] public long SizeBytes { get; init; }

    [JsonPropertyName("backend")] public string Backend { get; init; } = "";

    [JsonPropertyName("accelerator")] public string? Accelerator { get; init; }

    [JsonPropertyName("recipe")] public string? Recipe { get; init; }

    [JsonPropertyName("memory_mib")] public int? MemoryMiB { get; init; }

    [JsonPropertyName("created_by")] public string CreatedBy { get; init; } = "";

    public static SnapshotBody From(SnapshotInfo s) => new()
    {
        Tag = s.Tag,
        Dir = s.Path,
        CreatedAtUnix = s.CreatedAt.ToUnixTimeSeconds(),
        Bootable = s.IsComplete,
        SizeBytes = s.SizeBytes,
        Backend = VmmNames.Of(s.Backend), // forkd's lower-case names: the objects carry enums
        Accelerator = s.Accelerator is { } accelerator ? VmmNames.Of(accelerator) : null,
        Recipe = s.Recipe,
        MemoryMiB = s.MemoryMiB,
        CreatedBy = s.CreatedBy,
    };
}

/// <summary>forkd 0.5's <c>snapshot-info</c> (spec 10.6): the snapshot plus its chain; Forkd snapshots are flat (no diff links).</summary>
public sealed record SnapshotInfoBody
{
    [JsonPropertyName("snapshot")] public required SnapshotBody Snapshot { get; init; }

    [JsonPropertyName("parent_tag")] public string? ParentTag { get; init; }

    [JsonPropertyName("chain")] public required IReadOnlyList<string> Chain { get; init; }

    [JsonPropertyName("depth")] public int Depth { get; init; }

    [JsonPropertyName("running_children")] public required IReadOnlyList<string> RunningChildren { get; init; }
}

public sealed record CreateSandboxRequest
{
    [JsonPropertyName("snapshot_tag")] public string? SnapshotTag { get; init; }

    [JsonPropertyName("n")] public int N { get; init; } = 1;

    [JsonPropertyName("per_child_netns")] public bool PerChildNetns { get; init; }

    [JsonPropertyName("memory_limit_mib")] public long? MemoryLimitMiB { get; init; }
}

public sealed record SandboxBody
{
    [JsonPropertyName("id")] public required string Id { get; init; }

    [JsonPropertyName("snapshot_tag")] public required string SnapshotTag { get; init; }

    [JsonPropertyName("netns")] public string? Netns { get; init; }

    [JsonPropertyName("guest_addr")] public required string GuestAddr { get; init; }

    [JsonPropertyName("created_at_unix")] public long CreatedAtUnix { get; init; }

    [JsonPropertyName("pid")] public int? Pid { get; init; }

    [JsonPropertyName("memory_limit_mib")] public long? MemoryLimitMiB { get; init; }

    [JsonPropertyName("state")] public string State { get; init; } = "running";

    [JsonPropertyName("agent")] public string Agent { get; init; } = "";

    [JsonPropertyName("backend")] public string Backend { get; init; } = "";

    [JsonPropertyName("ready_ms")] public double ReadyMs { get; init; }

    public static SandboxBody From(ForkdChild c) => new()
    {
        Id = c.Id,
        SnapshotTag = c.Tag,
        Netns = c.NetworkNamespace,
        // forkd's children answer on 10.42.0.2:8888; ours do too inside their own namespace, else on the VMM's socket.
        GuestAddr = c.NetworkAgent is { } n ? $"{n.Address}:{n.Port}" : c.Agent.ToString(),
        CreatedAtUnix = c.StartedAt.ToUnixTimeSeconds(),
        Pid = c.ProcessId,
        MemoryLimitMiB = c.MemoryLimitMiB,
        State = c.State == ChildState.Running ? "running" : "exited",
        Agent = c.Agent.ToString(),
        Backend = VmmNames.Of(c.Backend),
        ReadyMs = Math.Round(c.ReadyTime, 1),
    };
}

public sealed record ExecRequest
{
    [JsonPropertyName("args")] public IReadOnlyList<string>? Args { get; init; }

    [JsonPropertyName("timeout_secs")] public long TimeoutSecs { get; init; } = 30;
}

public sealed record ExecResponse
{
    [JsonPropertyName("stdout")] public string Stdout { get; init; } = "";

    [JsonPropertyName("stderr")] public string Stderr { get; init; } = "";

    [JsonPropertyName("exit_code")] public long ExitCode { get; init; }

    /// <summary>The agent's own error (binary missing, timed out); forkd 0.1.3 dropped it.</summary>
    [JsonPropertyName("error")] public string? Error { get; init; }

    [JsonPropertyName("duration_ms")] public double DurationMs { get; init; }

    public static ExecResponse From(ForkdExecResult r) => new()
    {
        Stdout = r.Stdout,
        Stderr = r.Stderr,
        ExitCode = r.Error is not null && r.ExitCode == 0 ? 1 : r.ExitCode,
        Error = r.Error,
        DurationMs = Math.Round(r.DurationMs, 3),
    };
}

public sealed record EvalRequest
{
    [JsonPropertyName("code")] public string? Code { get; init; }

    [JsonPropertyName("timeout_secs")] public long TimeoutSecs { get; init; } = 30;
}

public sealed record EvalResponse
{
    [JsonPropertyName("result")] public string? Result { get; init; }

    [JsonPropertyName("error")] public string? Error { get; init; }

    [JsonPropertyName("exit_code")] public long ExitCode { get; init; }

    /// <summary>The value as JSON where the guest could encode it (forkd's REST dropped result_json).</summary>
    [JsonPropertyName("value")] public object? Value { get; init; }

    [JsonPropertyName("traceback")] public string? Traceback { get; init; }

    [JsonPropertyName("duration_ms")] public double DurationMs { get; init; }

    public static EvalResponse From(ForkdEvalResult r) => new()
    {
        Result = r.Repr,
        Error = r.Error,
        ExitCode = r.Error is null ? 0 : 1,
        Value = r.Value,
        Traceback = r.Traceback,
        DurationMs = Math.Round(r.DurationMs, 3),
    };
}

/// <summary>POST /v1/sandboxes/:id/branch body (forkd 0.1.4 / 0.3.0): an optional tag and diff flag.</summary>
public sealed record BranchRequest
{
    [JsonPropertyName("tag")] public string? Tag { get; init; }

    [JsonPropertyName("diff")] public bool? Diff { get; init; }
}

/// <summary>The new snapshot of a branch: forkd's SnapshotInfo fields with <c>pause_ms</c>, plus ours.</summary>
public sealed record BranchBody
{
    [JsonPropertyName("snapshot")] public required SnapshotBody Snapshot { get; init; }

    [JsonPropertyName("pause_ms")] public double PauseMs { get; init; }

    [JsonPropertyName("bytes_written")] public long BytesWritten { get; init; }

    [JsonPropertyName("mode")] public string Mode { get; init; } = "full";

    [JsonPropertyName("source_sandbox_id")] public string SourceSandboxId { get; init; } = "";
}
