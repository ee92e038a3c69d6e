using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.PowerShell.Commands;

/// <summary>Pauses a running child, saves it as a new snapshot (Full or Diff) and resumes it (forkd's BRANCH).</summary>
[Cmdlet(VerbsData.Checkpoint, "ForkdChild", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, HelpUri = HelpLinks.Base + "Checkpoint-ForkdChild.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class CheckpointForkdChildCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Id { get; set; } = "";

    /// <summary>The new snapshot's tag; never taken from the pipeline (a piped child's own Tag is the snapshot it came from).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Tag { get; set; } = "";

    [Parameter]
    [ValidateSet("Full", "Diff")]
    public string Mode { get; set; } = "Full";

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        if (!CheckTag(Tag))
        {
            return;
        }

        if (!ShouldProcess($"child {Id} → snapshot '{Tag}' ({Mode}{(Force ? ", replacing any existing one" : "")})", "Checkpoint child"))
        {
            return;
        }

        try
        {
            var result = RunEngine(call =>
            {
                var progress = call.Progress<CheckpointProgress>(1, $"Checkpoint-ForkdChild {Id}", p => (p.Stage, p.Percent));
                return Engine.Checkpoints.CheckpointAsync(new CheckpointRequest
                {
                    ChildId = Id,
                    Tag = Tag,
                    Mode = Mode == "Diff" ? SnapshotKinds.Diff : SnapshotKinds.Full,
                    Force = Force,
                    CreatedBy = $"Forkd {MyInvocation.MyCommand.Module?.Version?.ToString() ?? "0.0.0"} (Checkpoint-ForkdChild)",
                }, progress, call.CancellationToken);
            });
            WriteVerbose($"checkpoint of {result.SourceChildId} as '{Tag}' ({Mode}): paused {result.PauseTime.TotalMilliseconds:0.0} ms, " +
                         $"{result.CapturedPages} of {result.TotalPages} pages, {result.BytesWritten} bytes written");
            if (result.PausePhases.Count > 0)
            {
                WriteVerbose("pause: " + string.Join(", ", result.PausePhases.Select(p => $"{p.Key.Trim()} {p.Value:0.0} ms")));
            }

            var output = PSObject.AsPSObject(result.Snapshot);
            output.Properties.Add(new PSNoteProperty("PauseTime", result.PauseTime));
            output.Properties.Add(new PSNoteProperty("BytesWritten", result.BytesWritten));
            output.Properties.Add(new PSNoteProperty("Mode", Mode));
            output.Properties.Add(new PSNoteProperty("SourceChildId", result.SourceChildId));
            output.Properties.Add(new PSNoteProperty("ParentTag", result.ParentTag));
            output.Properties.Add(new PSNoteProperty("CapturedPages", result.CapturedPages));
            output.Properties.Add(new PSNoteProperty("TotalPages", result.TotalPages));
            var phases = new System.Collections.Specialized.OrderedDictionary(StringComparer.Ordinal);
            foreach (var phase in result.PausePhases)
            {
                phases[phase.Key.Trim()] = phase.Value; // ms; indented names are parts of the step before them
            }

            output.Properties.Add(new PSNoteProperty("PausePhases", phases));
            WriteObject(output);
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex, Id);
        }
    }
}
