using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace Forkd.PowerShell;

/// <summary>
/// What -AsJob returns (Hyper-V's and ThreadJob's model): the cmdlet itself, run with the same parameters in a
/// runspace of its own in this process, its streams feeding the job's. Receive-Job gives the live objects;
/// Stop-Job stops that pipeline the way Ctrl+C does, so the engine cleans up (stops what it started, removes its
/// work dirs) before the job reports Stopped.
/// </summary>
public sealed class ForkdJob : Job
{
    private readonly System.Management.Automation.PowerShell _shell;
    private readonly Runspace _runspace;
    private readonly ManualResetEventSlim _ended = new();

    private ForkdJob(string command, System.Management.Automation.PowerShell shell, Runspace runspace)
        : base(command)
    {
        _shell = shell;
        _runspace = runspace;
        PSJobTypeName = nameof(ForkdJob);
    }

    public override string StatusMessage => _shell.InvocationStateInfo.Reason?.Message ?? "";

    public override bool HasMoreData =>
        Output.Count > 0 || Error.Count > 0 || Warning.Count > 0 || Verbose.Count > 0 || Progress.Count > 0 || Information.Count > 0;

    public override string Location => "localhost";

    /// <summary>
    /// Starts <paramref name="invocations"/> (one bound-parameter set per pipeline input) of the calling cmdlet in
    /// a job and registers it with the session's job repository, so Get-Job, Wait-Job and Receive-Job see it.
    /// </summary>
    internal static ForkdJob Start(PSCmdlet cmdlet, IReadOnlyList<Hashtable> invocations)
    {
        var info = cmdlet.MyInvocation.MyCommand;
        var modulePath = info.Module?.Path ?? throw new InvalidOperationException("-AsJob needs the cmdlet to be loaded from its module");
        var state = InitialSessionState.CreateDefault2();
        state.ImportPSModule([modulePath]);
        var runspace = RunspaceFactory.CreateRunspace(state);
        runspace.Open();
        var shell = System.Management.Automation.PowerShell.Create();
        shell.Runspace = runspace;
        shell.AddScript("param($Location, $Command, $Invocations) Set-Location -LiteralPath $Location; foreach ($p in $Invocations) { & $Command @p }")
            .AddArgument(cmdlet.SessionState.Path.CurrentFileSystemLocation.ProviderPath)
            .AddArgument(info.Name)
            .AddArgument(invocations.ToArray());
        var job = new ForkdJob(cmdlet.MyInvocation.Line.Trim(), shell, runspace);
        shell.Streams.Error = job.Error;
        shell.Streams.Warning = job.Warning;
        shell.Streams.Verbose = job.Verbose;
        shell.Streams.Progress = job.Progress;
        shell.Streams.Information = job.Information;
        shell.Streams.Debug = job.Debug;
        job.SetJobState(JobState.Running);
        shell.BeginInvoke<PSObject, PSObject>(null, job.Output, null, job.OnInvocationEnded, null);
        cmdlet.JobRepository.Add(job);
        return job;
    }

    public override void StopJob()
    {
        if (IsFinished(JobStateInfo.State))
        {
            return;
        }

        SetJobState(JobState.Stopping);
        _shell.Stop(); // the cmdlet's StopProcessing cancels the engine, which cleans up before the pipeline stops
        _ended.Wait();
    }

    private void OnInvocationEnded(IAsyncResult result)
    {
        JobState final;
        try
        {
            _shell.EndInvoke(result);
            final = _shell.InvocationStateInfo.State == PSInvocationState.Stopped ? JobState.Stopped : JobState.Completed;
        }
        catch (PipelineStoppedException)
        {
            final = JobState.Stopped;
        }
        catch (RuntimeException ex)
        {
            // A terminating error of the cmdlet: the job failed, and says why in its error stream.
            Error.Add(ex.ErrorRecord);
            final = JobState.Failed;
        }

        if (JobStateInfo.State == JobState.Stopping)
        {
            final = JobState.Stopped;
        }

        // The shell is disposed with the job (Remove-Job), not here: Stop() may still be unwinding on another thread.
        SetJobState(final);
        _ended.Set();
    }

    private static bool IsFinished(JobState state) => state is JobState.Completed or JobState.Failed or JobState.Stopped;

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            if (!IsFinished(JobStateInfo.State))
            {
                StopJob();
            }

            _shell.Dispose();
            _runspace.Dispose();
            _ended.Dispose();
        }

        base.Dispose(disposing);
    }
}
