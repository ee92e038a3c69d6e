using System.Collections;
using System.Management.Automation;

namespace Forkd.PowerShell;

/// <summary>
/// Base of the long-running cmdlets that take -AsJob (Hyper-V's convention). With -AsJob every pipeline record's
/// bound parameters are collected and, at the end, one <see cref="ForkdJob"/> runs the same cmdlet with them in the
/// background; without it the cmdlet runs as usual. A cmdlet says only what it does: <see cref="ProcessInput"/>
/// for each record and <see cref="EndInput"/> at the end, neither called when it runs as a job's starter.
/// </summary>
public abstract class ForkdJobCmdlet : ForkdCmdlet
{
    private readonly List<Hashtable> _invocations = [];

    /// <summary>Run in the background and return a job (Receive-Job, Wait-Job, Stop-Job); Stop-Job cancels and cleans up like Ctrl+C.</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>This record's work, in the foreground (or inside the job).</summary>
    protected virtual void ProcessInput()
    {
    }

    /// <summary>The work after the last record, in the foreground (or inside the job).</summary>
    protected virtual void EndInput()
    {
    }

    protected sealed override void ProcessRecord()
    {
        if (AsJob)
        {
            RememberInvocation();
            return;
        }

        ProcessInput();
    }

    protected sealed override void EndProcessing()
    {
        if (!AsJob)
        {
            EndInput();
            return;
        }

        if (_invocations.Count == 0)
        {
            RememberInvocation(); // an empty pipeline: no record came, the job runs the cmdlet once with what was bound
        }

        WriteObject(ForkdJob.Start(this, _invocations));
    }

    /// <summary>This record's bound parameters, without -AsJob: the job runs the cmdlet once per entry.</summary>
    private void RememberInvocation()
    {
        var bound = new Hashtable(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in MyInvocation.BoundParameters)
        {
            if (!string.Equals(name, nameof(AsJob), StringComparison.OrdinalIgnoreCase))
            {
                bound[name] = value;
            }
        }

        _invocations.Add(bound);
    }
}
