using System.Diagnostics;
using System.Text.Json.Nodes;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>Pause, resume and checkpoint of a running QEMU child, over its QMP socket (closed again after each call).</summary>
public sealed partial class QemuBackend : IChildControl
{
    private const string DeviceStateFile = "devices.state";

    public async Task PauseChildAsync(ForkdChild child, CancellationToken cancellationToken)
    {
        await using var qmp = await ConnectChildAsync(child, cancellationToken).ConfigureAwait(false);
        await qmp.ExecuteAsync("stop", null, cancellationToken).ConfigureAwait(false);
    }

    public async Task ResumeChildAsync(ForkdChild child, CancellationToken cancellationToken)
    {
        await using var qmp = await ConnectChildAsync(child, cancellationToken).ConfigureAwait(false);
        await qmp.ExecuteAsync("cont", null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The pause covers only what must see a still guest: the device state (tens of KiB) and the guest RAM pages
    /// (all of them for Full, written straight to memory.bin, side by side with QEMU writing the device state; for Diff,
    /// the child's written pages, copied into buffers sized and pre-faulted before the stop: by a helper thread while
    /// QEMU writes the device state, then by this thread too). The diff file and the composed vmstate are written after
    /// the resume.
    /// <see cref="ChildCapture.PausePhases"/> says where the pause went.
    /// </summary>
    public async Task<ChildCapture> CaptureAsync(ForkdChild child, ChildCaptureRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(child);
        ArgumentNullException.ThrowIfNull(request);
        var parentConfig = request.Parent.Metadata.BackendConfig
            ?? throw new ForkdException("SnapshotIncomplete", ForkdErrorKind.InvalidData, $"snapshot '{request.Parent.Tag}' has no backend settings", request.Parent.Tag);
        var memoryFile = child.MemoryFile ?? request.Parent.Metadata.ResolveMemory(request.Parent.Path);
        var header = QemuVmState.Header(request.Parent.Metadata.ResolveVmState(request.Parent.Path), parentConfig);
        var mapping = GuestRam.Find(child.ProcessId, memoryFile);
        var deviceState = Path.Combine(request.StagingDirectory, DeviceStateFile);
        var memoryOut = Path.Combine(request.StagingDirectory, SnapshotFiles.Memory);

        await using var qmp = await ConnectChildAsync(child, cancellationToken).ConfigureAwait(false);
        var status = (await qmp.ExecuteAsync("query-status", null, cancellationToken).ConfigureAwait(false))?["status"]?.GetValue<string>();
        var wasRunning = status == "running";
        using var diffCopy = request.Kind == SnapshotKinds.Diff ? WrittenPageCopy.Prepare(child.ProcessId, mapping) : null; // before the stop
        long memoryBytes = 0;
        var phases = new List<KeyValuePair<string, double>>();
        var clock = Stopwatch.StartNew();
        var lap = TimeSpan.Zero;
        void Lap(string phase)
        {
            phases.Add(new(phase, Ms(clock.Elapsed - lap)));
            lap = clock.Elapsed;
        }

        try
        {
            if (wasRunning)
            {
                await qmp.ExecuteAsync("stop", null, cancellationToken).ConfigureAwait(false);
                Lap("stop");
            }

            request.OnPaused?.Invoke();
            var saveDevices = () => qmp.ExecuteAsync("xen-save-devices-state", new JsonObject { ["filename"] = deviceState, ["live"] = false }, cancellationToken);
            if (diffCopy is not null)
            {
                // The helper thread copies while QEMU writes the device state; this thread joins it after the reply
                // (with both copying beside QEMU, its reply, 1 ms alone, took up to 10).
                diffCopy.Begin(cancellationToken);
                await saveDevices().ConfigureAwait(false);
                Lap("device state (QMP xen-save-devices-state; the helper copies meanwhile)");
                diffCopy.Capture(); // on this thread: a hop to another one left a spinning pool thread on the second core
                Lap("written pages (the rest, both threads)");
                phases.Add(new("  pagemap scan (longest thread)", Ms(diffCopy.ScanTime)));
                foreach (var (thread, pieces, pages, started, ended) in diffCopy.WorkerTimes)
                {
                    phases.Add(new($"  {thread} thread: {pieces} pieces, {pages} pages, from +{Math.Round(started, 2)} ms", Math.Round(ended - started, 2)));
                }
            }
            else
            {
                // Side by side: QEMU's main thread writes the device state while this process reads RAM (one thread).
                TimeSpan deviceTime = default, memoryTime = default;
                var devices = Task.Run(async () =>
                {
                    var started = Stopwatch.GetTimestamp();
                    await saveDevices().ConfigureAwait(false);
                    deviceTime = Stopwatch.GetElapsedTime(started);
                }, cancellationToken);
                var memory = Task.Run(() =>
                {
                    var started = Stopwatch.GetTimestamp();
                    memoryBytes = GuestRam.CopyAll(child.ProcessId, mapping, memoryOut, cancellationToken);
                    memoryTime = Stopwatch.GetElapsedTime(started);
                }, cancellationToken);
                try
                {
                    await Task.WhenAll(devices, memory).ConfigureAwait(false); // both end before the cont, even when one fails
                }
                finally
                {
                    Lap("device state | memory (side by side)");
                    phases.Add(new("  device state (QMP xen-save-devices-state)", Ms(deviceTime)));
                    phases.Add(new("  read all RAM, write memory.bin", Ms(memoryTime)));
                }
            }
        }
        finally
        {
            // Whatever happened (Ctrl+C included), a child that was running runs on.
            if (wasRunning)
            {
                await qmp.ExecuteAsync("cont", null, CancellationToken.None).ConfigureAwait(false);
                Lap("cont");
            }
        }

        var pause = clock.Elapsed;
        long captured;
        if (diffCopy is not null)
        {
            var written = diffCopy.Runs();
            memoryBytes = MemoryDiff.Write(Path.Combine(request.StagingDirectory, MemoryDiff.FileName), mapping.Length, written);
            captured = written.Sum(r => r.PageCount);
        }
        else
        {
            captured = memoryBytes / MemoryDiff.PageSize;
        }

        var vmstateBytes = QemuVmState.Compose(header, deviceState, Path.Combine(request.StagingDirectory, SnapshotFiles.VmState));
        File.Delete(deviceState);
        var config = parentConfig.DeepClone().AsObject();
        config[QemuVmState.HeaderBytesKey] = header.Length;
        return new ChildCapture(pause, vmstateBytes + memoryBytes, config, captured, mapping.Pages) { PausePhases = phases };
    }

    private static double Ms(TimeSpan time) => Math.Round(time.TotalMilliseconds, 2);

    private static Task<QmpClient> ConnectChildAsync(ForkdChild child, CancellationToken cancellationToken)
    {
        if (!ProcessControl.IsAlive(child.ProcessId))
        {
            throw new ForkdException("ChildNotRunning", ForkdErrorKind.NotFound, $"child {child.Id} is not running (pid {child.ProcessId})", child.Id)
            { Hint = "Get-ForkdChild shows which children run." };
        }

        // One QMP client at a time: a second connection would wait for the first, so this one gives up after a while.
        return QmpClient.ConnectAsync(Path.Combine(child.WorkDirectory, QemuCommandLine.QmpSocket), TimeSpan.FromSeconds(10), cancellationToken);
    }
}
