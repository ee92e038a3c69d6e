using System.Management.Automation;

namespace Forkd.PowerShell;

/// <summary>
/// Runs an engine task off the pipeline thread and relays its progress reports to Write-Progress on
/// the pipeline thread (the only thread allowed to write), through <see cref="PipelinePump"/>, which
/// also keeps waiting for the task's cleanup when Ctrl+C stops the pipeline.
/// </summary>
internal static class ProgressPump
{
    public static TResult Run<TProgress, TResult>(Cmdlet cmdlet, Func<IProgress<TProgress>, Task<TResult>> start,
        Func<TProgress, ProgressRecord> toRecord)
    {
        using var pump = new PipelinePump();
        ProgressRecord? last = null;
        var progress = pump.Progress<TProgress>(item =>
        {
            last = toRecord(item);
            cmdlet.WriteProgress(last);
        });
        var result = pump.Run(Task.Run(() => start(progress)));
        if (last is not null)
        {
            cmdlet.WriteProgress(new ProgressRecord(last.ActivityId, last.Activity, "done") { RecordType = ProgressRecordType.Completed });
        }

        return result;
    }
}
