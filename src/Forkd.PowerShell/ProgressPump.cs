using System.Collections.Concurrent;
using System.Management.Automation;

namespace Forkd.PowerShell;

/// <summary>
/// Runs an engine task off the pipeline thread and relays its progress reports to
/// Write-Progress on the pipeline thread (the only thread allowed to write).
/// </summary>
internal static class ProgressPump
{
    public static TResult Run<TProgress, TResult>(Cmdlet cmdlet, Func<IProgress<TProgress>, Task<TResult>> start,
        Func<TProgress, ProgressRecord> toRecord)
    {
        using var queue = new BlockingCollection<TProgress>();
        var reporter = new QueueProgress<TProgress>(queue);
        var task = Task.Run(() => start(reporter));
        _ = task.ContinueWith(_ => queue.CompleteAdding(), TaskScheduler.Default);
        ProgressRecord? last = null;
        foreach (var item in queue.GetConsumingEnumerable())
        {
            last = toRecord(item);
            cmdlet.WriteProgress(last);
        }

        if (last is not null)
        {
            cmdlet.WriteProgress(new ProgressRecord(last.ActivityId, last.Activity, "done") { RecordType = ProgressRecordType.Completed });
        }

        return task.GetAwaiter().GetResult();
    }

    private sealed class QueueProgress<T>(BlockingCollection<T> queue) : IProgress<T>
    {
        public void Report(T value)
        {
            if (!queue.IsAddingCompleted)
            {
                queue.TryAdd(value);
            }
        }
    }
}
