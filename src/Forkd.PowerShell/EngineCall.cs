using System.Globalization;
using System.Management.Automation;
using Forkd.Core.Hub;

namespace Forkd.PowerShell;

/// <summary>
/// What engine work running off the pipeline thread may use to reach the user: progress, verbose and warning
/// lines, and any other write, all carried out in order on the pipeline thread by <see cref="PipelinePump"/>.
/// Progress reports are coalesced (only the newest of a burst is drawn) but never reordered.
/// </summary>
public sealed class EngineCall
{
    private readonly Cmdlet _cmdlet;
    private readonly PipelinePump _pump;
    private readonly List<ProgressRecord> _open = [];

    internal EngineCall(Cmdlet cmdlet, PipelinePump pump, CancellationToken cancellationToken)
    {
        _cmdlet = cmdlet;
        _pump = pump;
        CancellationToken = cancellationToken;
    }

    /// <summary>Tripped by Ctrl+C (StopProcessing).</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Runs <paramref name="action"/> on the pipeline thread (WriteObject, WriteError, …).</summary>
    public void Post(Action action) => _pump.Post(action);

    public void Verbose(string line) => _pump.Post(() => _cmdlet.WriteVerbose(line));

    public void Warning(string line) => _pump.Post(() => _cmdlet.WriteWarning(line));

    /// <summary>A progress sink drawing each report as a progress bar with <paramref name="activityId"/>.</summary>
    public IProgress<T> Progress<T>(int activityId, string activity, Func<T, (string Status, int Percent)> describe)
    {
        ArgumentNullException.ThrowIfNull(describe);
        return new CoalescingSink<T>(this, value =>
        {
            var (status, percent) = describe(value);
            Draw(new ProgressRecord(activityId, activity, string.IsNullOrEmpty(status) ? activity : status)
            {
                PercentComplete = Math.Clamp(percent, -1, 100),
            });
        });
    }

    /// <summary>Hub transfers: bytes, rate and time left; a new activity (download, then install) closes the previous bar.</summary>
    public IProgress<PackProgress> PackProgress(int activityId)
    {
        string? lastActivity = null;
        return new CoalescingSink<PackProgress>(this, p =>
        {
            if (lastActivity is not null && lastActivity != p.Activity)
            {
                Draw(new ProgressRecord(activityId, lastActivity, "done") { RecordType = ProgressRecordType.Completed });
            }

            lastActivity = p.Activity;
            var mib = p.Bytes / 1048576.0;
            var rate = p.BytesPerSecond / 1048576.0;
            var status = p.TotalBytes is { } total
                ? string.Create(CultureInfo.InvariantCulture, $"{mib,6:F1} / {total / 1048576.0:F1} MiB ({p.Percent,3}% · {rate:F1} MiB/s)")
                : string.Create(CultureInfo.InvariantCulture, $"{mib,6:F1} MiB ({rate:F1} MiB/s)");
            var record = new ProgressRecord(activityId, p.Activity, status) { PercentComplete = p.Percent ?? -1 };
            if (p.TotalBytes is > 0 && p.Bytes > 0 && p.Bytes < p.TotalBytes)
            {
                record.SecondsRemaining = (int)((p.TotalBytes.Value - p.Bytes) / Math.Max(p.BytesPerSecond, 1));
            }

            Draw(record);
        });
    }

    /// <summary>Closes every bar this call drew (on the pipeline thread, after the work ended).</summary>
    internal void CompleteProgress()
    {
        foreach (var record in _open)
        {
            try
            {
                _cmdlet.WriteProgress(new ProgressRecord(record.ActivityId, record.Activity, "done") { RecordType = ProgressRecordType.Completed });
            }
            catch (PipelineStoppedException)
            {
                return;
            }
        }

        _open.Clear();
    }

    private void Draw(ProgressRecord record)
    {
        _open.RemoveAll(r => r.ActivityId == record.ActivityId);
        if (record.RecordType != ProgressRecordType.Completed)
        {
            _open.Add(record);
        }

        _cmdlet.WriteProgress(record);
    }

    private sealed class CoalescingSink<T>(EngineCall call, Action<T> draw) : IProgress<T>
    {
        private readonly object _gate = new();
        private T? _latest;
        private bool _pending;

        public void Report(T value)
        {
            lock (_gate)
            {
                _latest = value;
                if (_pending)
                {
                    return; // the queued draw will pick up this newer value
                }

                _pending = true;
            }

            call.Post(() =>
            {
                T current;
                lock (_gate)
                {
                    current = _latest!;
                    _pending = false;
                }

                draw(current);
            });
        }
    }
}
