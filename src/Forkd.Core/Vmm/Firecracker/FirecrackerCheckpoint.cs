using System.Diagnostics;
using System.Text.Json.Nodes;
using Forkd.Core.Store;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>
/// Pause, resume and checkpoint of a running Firecracker child over its API socket: <c>PATCH /vm</c> Paused,
/// <c>PUT /snapshot/create</c> with <c>snapshot_type</c> Full or Diff, <c>PATCH /vm</c> Resumed. Diff needs dirty page
/// tracking, which children get at restore (<c>track_dirty_pages</c> in <c>PUT /snapshot/load</c>). Firecracker's
/// diff memory file is sparse (only the dirty pages allocated); after the resume it becomes a Forkd memory.diff.
/// </summary>
public sealed partial class FirecrackerBackend : IChildControl
{
    private const string FirecrackerDiffFile = "memory.fcdiff";

    /// <summary>Children restore with dirty page tracking on, so they can be checkpointed in Diff mode.</summary>
    public bool TrackDirtyPages { get; init; } = true;

    public async Task PauseChildAsync(ForkdChild child, CancellationToken cancellationToken)
    {
        using var api = ApiOf(child);
        await api.PauseAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task ResumeChildAsync(ForkdChild child, CancellationToken cancellationToken)
    {
        using var api = ApiOf(child);
        await api.ResumeAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<ChildCapture> CaptureAsync(ForkdChild child, ChildCaptureRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(child);
        ArgumentNullException.ThrowIfNull(request);
        var parentConfig = request.Parent.Metadata.BackendConfig
            ?? throw new ForkdException("SnapshotIncomplete", ForkdErrorKind.InvalidData, $"snapshot '{request.Parent.Tag}' has no backend settings", request.Parent.Tag);
        var diff = request.Kind == SnapshotKinds.Diff;
        var vmstate = Path.GetFullPath(Path.Combine(request.StagingDirectory, SnapshotFiles.VmState));
        var memory = Path.GetFullPath(Path.Combine(request.StagingDirectory, diff ? FirecrackerDiffFile : SnapshotFiles.Memory));
        using var api = ApiOf(child);
        var wasRunning = (await api.DescribeInstanceAsync(cancellationToken).ConfigureAwait(false)).State == "Running";
        var clock = Stopwatch.StartNew();
        try
        {
            if (wasRunning)
            {
                await api.PauseAsync(cancellationToken).ConfigureAwait(false);
            }

            request.OnPaused?.Invoke();
            await api.CreateSnapshotAsync(new FcSnapshotCreate(vmstate, memory, diff ? "Diff" : "Full"), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (wasRunning)
            {
                await api.ResumeAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        var pause = clock.Elapsed;
        var config = parentConfig.DeepClone().AsObject();
        // Writable disks as they are now, cloned beside the vmstate (as for a parent's snapshot).
        config["drives"] = FirecrackerDrives.ToJson(FirecrackerDrives.SaveWritable(
            FirecrackerDrives.FromJson(parentConfig["drives"] as JsonArray), child.WorkDirectory, request.StagingDirectory));
        long memoryBytes, captured, total;
        if (diff)
        {
            var runs = SparseExtents.ReadRuns(memory, cancellationToken);
            var imageSize = new FileInfo(memory).Length;
            memoryBytes = MemoryDiff.Write(Path.Combine(request.StagingDirectory, MemoryDiff.FileName), imageSize, runs);
            File.Delete(memory);
            captured = runs.Sum(r => r.PageCount);
            total = imageSize / MemoryDiff.PageSize;
        }
        else
        {
            memoryBytes = Host.NativeFile.AllocatedBytes(memory);
            captured = memoryBytes / MemoryDiff.PageSize;
            total = new FileInfo(memory).Length / MemoryDiff.PageSize;
        }

        return new ChildCapture(pause, new FileInfo(vmstate).Length + memoryBytes, config, captured, total);
    }

    private static FirecrackerApiClient ApiOf(ForkdChild child)
    {
        if (!Host.ProcessControl.IsAlive(child.ProcessId))
        {
            throw new ForkdException("ChildNotRunning", ForkdErrorKind.NotFound, $"child {child.Id} is not running (pid {child.ProcessId})", child.Id);
        }

        return new FirecrackerApiClient(Path.Combine(child.WorkDirectory, ApiSocketName));
    }
}
