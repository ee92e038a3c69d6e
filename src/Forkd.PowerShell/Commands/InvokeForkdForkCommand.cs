using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;

namespace Forkd.PowerShell.Commands;

/// <summary>Starts children of a snapshot: each a detached VMM mapping the snapshot's memory copy-on-write.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "ForkdFork", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Invoke-ForkdFork.md")]
[OutputType(typeof(ForkdChild))]
[Alias("New-ForkdChild")]
public sealed class InvokeForkdForkCommand : ForkdJobCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string Tag { get; set; } = "";

    [Parameter(Position = 1)]
    [ValidateRange(1, 1024)]
    public int Count { get; set; } = 1;

    [Parameter]
    [ValidateRange(16, 1048576)]
    public long? MemoryLimitMiB { get; set; }

    /// <summary>Children starting at the same time (default eight per core); the rest wait their turn.</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = ForkRequest.DefaultParallelStarts;

    /// <summary>Fork even when several children would write one read-write volume.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Start each child in its own network namespace forkd-child-&lt;i&gt; (see Initialize-ForkdNetwork).</summary>
    [Parameter]
    public SwitchParameter Network { get; set; }

    protected override void ProcessInput()
    {
        if (!CheckTag(Tag))
        {
            return;
        }

        // A missing or damaged snapshot is reported under -WhatIf too, not "Fork 1 child(ren)"; a tag that another
        // operation holds (a snapshot being made or replaced) is TagInUse, as the fork itself would say.
        try
        {
            using (TagLock.AcquireShared(Paths, Tag, "Invoke-ForkdFork (checking)"))
            {
                _ = Store.Get(Tag);
            }
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex, Tag);
            return;
        }

        if (!ShouldProcess(Tag, $"Fork {Count} child(ren)"))
        {
            return;
        }

        var activity = $"Invoke-ForkdFork {Tag}";
        try
        {
            var outcomes = RunEngine(call =>
            {
                var request = new ForkRequest
                {
                    Tag = Tag,
                    Count = Count,
                    MemoryLimitMiB = MemoryLimitMiB,
                    Network = Network,
                    AllowSharedWritableVolumes = Force,
                    MaxParallelStarts = ThrottleLimit,
                    OnWarning = call.Warning,
                };
                var progress = call.Progress<ForkProgress>(2, activity,
                    p => ($"{p.Ready} of {p.Count} ready, {p.Failed} failed", (int)(100.0 * (p.Ready + p.Failed) / p.Count)));
                return Engine.ForkAsync(request, progress, call.CancellationToken);
            });
            foreach (var outcome in outcomes.OrderBy(o => o.Index))
            {
                if (outcome.Child is { } child)
                {
                    WriteVerbose($"child {child.Index} {child.Id}: pid {child.ProcessId}, {child.Accelerator.ToString().ToUpperInvariant()}, " +
                                 $"restored in {child.RestoreTime:0} ms, agent ready at {child.ReadyTime:0} ms");
                    WriteObject(child);
                }
                else if (outcome.Error is { } error)
                {
                    WriteForkdError(error, $"{Tag}#{outcome.Index}");
                }
            }
        }
        catch (ForkdException ex)
        {
            // One tag failing (not found, in use, damaged) must not stop the next tag in the pipeline.
            WriteForkdError(ex, Tag);
        }
    }
}
