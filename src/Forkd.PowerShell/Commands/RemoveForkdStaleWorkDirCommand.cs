using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core.Host;
using Forkd.Core.Text;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Sweeps work dirs that crashed or interrupted runs left behind (forkd's <c>cleanup</c>): stops orphaned VMMs
/// that use them, restores a snapshot whose only complete copy sits in staging, leaves other users' dirs alone.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "ForkdStaleWorkDir", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Remove-ForkdStaleWorkDir.md")]
[OutputType(typeof(StaleWorkDir))]
public sealed class RemoveForkdStaleWorkDirCommand : ForkdCmdlet
{
    /// <summary>Only candidates of these kinds.</summary>
    [Parameter]
    public WorkDirKind[]? Kind { get; set; }

    protected override void EndProcessing()
    {
        var sweeper = Engine.Sweeper;
        var candidates = sweeper.Find();
        var i = 0;
        foreach (var candidate in candidates)
        {
            if (StopToken.IsCancellationRequested)
            {
                return;
            }

            if (Kind is not null && !Kind.Contains(candidate.Kind))
            {
                continue;
            }

            WriteProgress(new ProgressRecord(1, "Sweeping stale work dirs", candidate.Path)
            {
                PercentComplete = (int)(100.0 * i++ / Math.Max(1, candidates.Count)),
            });

            if (candidate.IsLive || candidate.Action == WorkDirAction.Refused)
            {
                WriteVerbose($"keeping {candidate.Path}: {candidate.Reason}");
                WriteObject(candidate);
                continue;
            }

            var what = candidate.IsSymlink ? "Remove symbolic link (its target is not touched)"
                : candidate.Action == WorkDirAction.WouldRestore ? "Restore the only complete copy of a snapshot"
                : candidate.OrphanProcessIds.Count > 0 ? $"Stop orphaned VMM pid {string.Join(", ", candidate.OrphanProcessIds)} and remove its work dir"
                : "Remove stale work dir";
            if (!ShouldProcess($"{candidate.Path} ({ByteSize.Format(candidate.SizeBytes)})", what))
            {
                WriteObject(candidate);
                continue;
            }

            var outcome = sweeper.Remove(candidate);
            if (outcome.Action == WorkDirAction.Failed)
            {
                WriteError("StaleWorkDirRemoveFailed", ErrorCategory.WriteError,
                    $"could not remove {outcome.Path}: {outcome.Reason}", outcome.Path);
            }

            WriteObject(outcome);
        }

        WriteProgress(new ProgressRecord(1, "Sweeping stale work dirs", "done") { RecordType = ProgressRecordType.Completed });
    }
}
