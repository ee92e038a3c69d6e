using System.Text.Json.Nodes;
using Forkd.Core.Store;

namespace Forkd.Core.Vmm;

/// <summary>What a checkpoint of a running child asks its backend for.</summary>
public sealed record ChildCaptureRequest
{
    /// <summary><see cref="SnapshotKinds.Full"/> (all of guest RAM) or <see cref="SnapshotKinds.Diff"/> (only the pages the child wrote).</summary>
    public required SnapshotKinds Kind { get; init; }

    /// <summary>The staging dir the backend writes the vmstate and <c>memory.bin</c> or <c>memory.diff</c> into.</summary>
    public required string StagingDirectory { get; init; }

    /// <summary>The snapshot the child was forked from (its files, its recorded backend settings).</summary>
    public required SnapshotInfo Parent { get; init; }

    /// <summary>Called once the child is paused, before anything is captured (tests cancel here to check that the source runs on).</summary>
    public Action? OnPaused { get; init; }
}

/// <summary>What a backend captured, and how long the source child was paused for it.</summary>
/// <param name="PauseTime">From the pause to the resume (zero-cost work is done after the resume).</param>
/// <param name="BytesWritten">Bytes of the vmstate and memory files written.</param>
/// <param name="BackendConfig">The settings children of the new snapshot need (as <see cref="IVmmBackend.SnapshotConfig"/> gives).</param>
/// <param name="CapturedPages">Pages written to the memory file (all non-zero pages for Full, the dirty pages for Diff).</param>
/// <param name="TotalPages">Pages of guest RAM.</param>
public sealed record ChildCapture(TimeSpan PauseTime, long BytesWritten, JsonObject BackendConfig, long CapturedPages, long TotalPages)
{
    /// <summary>Where the pause went, in ms, step by step (for -Verbose and the benchmark); empty when the backend does not say.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> PausePhases { get; init; } = [];
}

/// <summary>
/// A backend that can pause, resume and checkpoint a child that is already running (one it restored earlier, found
/// through the child's registry record). Implemented beside <see cref="IVmmBackend"/> by backends that support it.
/// </summary>
public interface IChildControl
{
    Task PauseChildAsync(ForkdChild child, CancellationToken cancellationToken);

    Task ResumeChildAsync(ForkdChild child, CancellationToken cancellationToken);

    /// <summary>
    /// Pauses the child (unless it is paused already), captures device state and memory into the staging dir and
    /// resumes it as it was, whatever happens (cancellation included): the source keeps running.
    /// </summary>
    Task<ChildCapture> CaptureAsync(ForkdChild child, ChildCaptureRequest request, CancellationToken cancellationToken);
}
