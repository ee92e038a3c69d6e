using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>What <c>Checkpoint-ForkdChild</c> asks for.</summary>
public sealed record CheckpointRequest
{
    public required string ChildId { get; init; }

    public required string Tag { get; init; }

    /// <summary><see cref="SnapshotKinds.Full"/> or <see cref="SnapshotKinds.Diff"/>.</summary>
    public SnapshotKinds Mode { get; init; } = SnapshotKinds.Full;

    /// <summary>Replace an existing snapshot of the tag (refused while its children run).</summary>
    public bool Force { get; init; }

    public string CreatedBy { get; init; } = "Forkd";

    /// <summary>Called while the source is paused (tests cancel here).</summary>
    public Action? OnPaused { get; init; }
}

public sealed record CheckpointProgress(string Stage, int Percent);

/// <summary>The new snapshot, and what the checkpoint cost the source child.</summary>
public sealed record CheckpointResult(SnapshotInfo Snapshot, TimeSpan PauseTime, long BytesWritten, SnapshotKinds Mode, string SourceChildId,
    string ParentTag, long CapturedPages, long TotalPages)
{
    /// <summary>Where the pause went (ms per step), as the backend measured it.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> PausePhases { get; init; } = [];
}

/// <summary>
/// Branches a running child (forkd's BRANCH, Hyper-V's Checkpoint-VM): pauses it, saves it as a new snapshot and
/// resumes it. Children of the new tag start with the source's state at that instant. The snapshot is written into
/// a staging dir and installed through the store's one atomic path under the new tag's exclusive lock, so a failed or
/// cancelled checkpoint leaves no half tag, and the backend resumes the source whatever happens.
/// </summary>
public sealed class Checkpointer
{
    private readonly SnapshotStore _store;
    private readonly BackendCatalog _backends;

    public Checkpointer(SnapshotStore store, BackendCatalog backends)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _backends = backends ?? throw new ArgumentNullException(nameof(backends));
    }

    public async Task<CheckpointResult> CheckpointAsync(CheckpointRequest request, IProgress<CheckpointProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tag = TagRule.Validate(request.Tag);
        if (request.Mode is not (SnapshotKinds.Full or SnapshotKinds.Diff))
        {
            throw new ForkdException("InvalidCheckpointMode", ForkdErrorKind.InvalidArgument, $"mode must be Full or Diff (got {request.Mode})", request.Mode);
        }

        var child = FindLiveChild(request.ChildId);
        if (string.Equals(child.Tag, tag, StringComparison.Ordinal))
        {
            throw new ForkdException("SnapshotInUse", ForkdErrorKind.InUse,
                $"child {child.Id} runs from snapshot '{tag}' itself; a checkpoint cannot replace the snapshot its source maps", tag)
            { Hint = "Choose a new -Tag." };
        }

        var (backend, control) = ControlFor(child);
        if (!backend.Capabilities.SnapshotKinds.HasFlag(request.Mode))
        {
            throw new ForkdException("BackendCapabilityMissing", ForkdErrorKind.NotSupported,
                $"the {backend.Kind} backend cannot write {request.Mode} snapshots", backend.Kind.ToString())
            { Hint = "Use -Mode Full." };
        }

        using var tagLock = TagLock.Acquire(_store.Paths, tag, "Checkpoint-ForkdChild");
        if (!request.Force)
        {
            _store.ThrowIfExists(tag); // before the source is paused; checked again at install
        }
        else if (_store.Exists(tag))
        {
            _store.ThrowIfNotReplaceable(tag); // before the source is paused
        }

        // Shared: the source's snapshot cannot be replaced or removed while its files are read.
        using var parentLock = TagLock.AcquireShared(_store.Paths, child.Tag, "Checkpoint-ForkdChild (source snapshot)");
        var parent = _store.Get(child.Tag);
        var staging = WorkDirectories.Create(_store.Paths, WorkDirKind.Snapshot, tag);
        try
        {
            progress?.Report(new("pausing and capturing", 10));
            var capture = await control.CaptureAsync(child, new ChildCaptureRequest
            {
                Kind = request.Mode,
                StagingDirectory = staging,
                Parent = parent,
                OnPaused = request.OnPaused,
            }, cancellationToken).ConfigureAwait(false);

            progress?.Report(new("linking kernel, initramfs and root disk", 70));
            foreach (var name in new[] { SnapshotFiles.Kernel, SnapshotFiles.Initramfs, SnapshotFiles.RootDisk, SnapshotFiles.Rootfs })
            {
                var source = Path.Combine(parent.Path, name);
                if (File.Exists(source))
                {
                    NativeFile.LinkOrCopy(source, Path.Combine(staging, name)); // never written: children attach them read-only
                }
            }

            string? parentHash = null;
            if (request.Mode == SnapshotKinds.Diff)
            {
                progress?.Report(new("hashing the parent's memory image", 80));
                parentHash = MemoryImageHash.Get(child.MemoryFile ?? parent.Metadata.ResolveMemory(parent.Path), cancellationToken);
            }

            var mode = request.Mode.ToString().ToLowerInvariant();
            (parent.Metadata with
            {
                CreatedAt = DateTimeOffset.UtcNow,
                CreatedBy = request.CreatedBy,
                BackendConfig = capture.BackendConfig,
                VmState = SnapshotFiles.VmState,
                Memory = SnapshotFiles.Memory,
                // Volumes and root disk: the parent's, by the same rules as its other children.
                ParentTag = request.Mode == SnapshotKinds.Diff ? parent.Tag : null,
                ParentContentHash = parentHash,
                MemoryDiff = request.Mode == SnapshotKinds.Diff ? MemoryDiff.FileName : null,
                Source = new SnapshotSource
                {
                    Kind = "checkpoint",
                    ChildId = child.Id,
                    ParentTag = parent.Tag,
                    Mode = mode,
                    PauseMilliseconds = Math.Round(capture.PauseTime.TotalMilliseconds, 3),
                    BytesWritten = capture.BytesWritten,
                },
            }).Save(staging);

            progress?.Report(new("installing snapshot", 95));
            cancellationToken.ThrowIfCancellationRequested();
            var installed = _store.Install(tagLock, staging, request.Force);
            return new CheckpointResult(installed, capture.PauseTime, capture.BytesWritten, request.Mode, child.Id, parent.Tag,
                capture.CapturedPages, capture.TotalPages)
            { PausePhases = capture.PausePhases };
        }
        finally
        {
            SafeDelete.Delete(staging); // gone already when installed
        }
    }

    /// <summary>Pauses a child (QMP <c>stop</c>; Firecracker <c>PATCH /vm</c>) and records it, so Get-ForkdChild shows <c>Paused</c>.</summary>
    public async Task<ForkdChild> SuspendAsync(string childId, CancellationToken cancellationToken)
    {
        var child = FindLiveChild(childId);
        var (_, control) = ControlFor(child);
        await control.PauseChildAsync(child, cancellationToken).ConfigureAwait(false);
        var paused = child with { Paused = true, State = ChildState.Paused };
        _store.Children.Save(paused);
        return paused;
    }

    public async Task<ForkdChild> ResumeAsync(string childId, CancellationToken cancellationToken)
    {
        var child = FindLiveChild(childId);
        var (_, control) = ControlFor(child);
        await control.ResumeChildAsync(child, cancellationToken).ConfigureAwait(false);
        var running = child with { Paused = false, State = ChildState.Running };
        _store.Children.Save(running);
        return running;
    }

    private ForkdChild FindLiveChild(string childId)
    {
        if (!ChildRegistry.IsValidId(childId))
        {
            throw new ForkdException("InvalidChildId", ForkdErrorKind.InvalidArgument, $"invalid child id '{childId}'", childId);
        }

        var child = _store.Children.Get(childId) ?? throw new ForkdException("ChildNotFound", ForkdErrorKind.NotFound,
            $"no child with id '{childId}'", childId)
        { Hint = "Get-ForkdChild lists the known children." };
        if (!child.IsAlive)
        {
            throw new ForkdException("ChildNotRunning", ForkdErrorKind.InvalidArgument, $"child {child.Id} has exited", child.Id)
            { Hint = $"Stop-ForkdChild -Id {child.Id} removes its record." };
        }

        return child;
    }

    private (IVmmBackend Backend, IChildControl Control) ControlFor(ForkdChild child)
    {
        var kind = child.Backend;
        var backend = _backends.Get(kind);
        return backend is IChildControl control
            ? (backend, control)
            : throw new ForkdException("BackendCapabilityMissing", ForkdErrorKind.NotSupported,
                $"the {kind} backend cannot pause or checkpoint a running child", kind.ToString());
    }
}
