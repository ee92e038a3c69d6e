using System.Globalization;
using System.Management.Automation;
using Forkd.Core.Hub;

namespace Forkd.PowerShell;

/// <summary>
/// Runs a hub engine task off the pipeline thread and relays its progress to Write-Progress from the
/// pipeline thread (the only thread allowed to write). On Ctrl+C it keeps waiting until the engine has
/// cleaned up after itself, then stops the pipeline.
/// </summary>
internal sealed class HubTaskRunner : IProgress<PackProgress>
{
    private readonly Cmdlet _cmdlet;
    private readonly int _activityId;
    private PackProgress? _latest;
    private string? _lastActivity;
    private bool _canWrite = true;

    public HubTaskRunner(Cmdlet cmdlet, int activityId)
    {
        _cmdlet = cmdlet;
        _activityId = activityId;
    }

    public void Report(PackProgress value) => Volatile.Write(ref _latest, value);

    public T Run<T>(Func<IProgress<PackProgress>, Task<T>> start, CancellationToken stopToken)
    {
        ArgumentNullException.ThrowIfNull(start);
        Task<T> task;
        try
        {
            task = start(this);
        }
        catch (OperationCanceledException) when (stopToken.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }

        while (true)
        {
            bool done;
            try
            {
                done = task.Wait(150, CancellationToken.None); // not stopToken: on Ctrl+C we still wait for the cleanup
            }
            catch (AggregateException)
            {
                done = true;
            }

            Relay();
            if (done)
            {
                break;
            }
        }

        Complete();
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (Exception) when (stopToken.IsCancellationRequested)
        {
            // Stopped by Ctrl+C: whatever the interrupted work threw, the engine has cleaned up; just stop.
            throw new PipelineStoppedException();
        }
    }

    private void Relay()
    {
        var p = Interlocked.Exchange(ref _latest, null);
        if (p is null || !_canWrite)
        {
            return;
        }

        if (_lastActivity is not null && _lastActivity != p.Activity)
        {
            Complete();
        }

        _lastActivity = p.Activity;
        var mib = p.Bytes / 1048576.0;
        var rate = p.BytesPerSecond / 1048576.0;
        var status = p.TotalBytes is { } total
            ? string.Create(CultureInfo.InvariantCulture, $"{mib,6:F1} / {total / 1048576.0:F1} MiB ({p.Percent,3}% · {rate:F1} MiB/s)")
            : string.Create(CultureInfo.InvariantCulture, $"{mib,6:F1} MiB ({rate:F1} MiB/s)");
        var record = new ProgressRecord(_activityId, p.Activity, status) { PercentComplete = p.Percent ?? -1 };
        if (p.TotalBytes is > 0 && p.Bytes > 0 && p.Bytes < p.TotalBytes)
        {
            record.SecondsRemaining = (int)((p.TotalBytes.Value - p.Bytes) / Math.Max(p.BytesPerSecond, 1));
        }

        Write(record);
    }

    private void Complete()
    {
        if (_lastActivity is not null)
        {
            Write(new ProgressRecord(_activityId, _lastActivity, "done") { RecordType = ProgressRecordType.Completed });
        }
    }

    private void Write(ProgressRecord record)
    {
        if (!_canWrite)
        {
            return;
        }

        try
        {
            _cmdlet.WriteProgress(record);
        }
        catch (PipelineStoppedException)
        {
            _canWrite = false; // stopping: keep waiting for the engine's cleanup, write nothing more
        }
    }
}
