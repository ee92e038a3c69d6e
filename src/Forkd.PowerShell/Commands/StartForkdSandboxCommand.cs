using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.PowerShell.Commands;

/// <summary>One-shot sandbox (forkd's <c>run</c>): snapshot a recipe, fork one child, run one command, clean up.</summary>
[Cmdlet(VerbsLifecycle.Start, "ForkdSandbox", SupportsShouldProcess = true)]
[OutputType(typeof(SandboxResult))]
public sealed class StartForkdSandboxCommand : ForkdCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Recipe { get; set; } = "";

    /// <summary>The program and its arguments, run without a shell.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Command { get; set; } = [];

    [Parameter]
    [ValidateRange(64, 65536)]
    public int MemoryMiB { get; set; } = 256;

    [Parameter]
    public string[] Volume { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 60;

    [Parameter]
    public AcceleratorPreference Accelerator { get; set; } = AcceleratorPreference.Auto;

    /// <summary>Leave the snapshot and the child running (for a look inside); remove them later with Stop-ForkdChild and Remove-ForkdSnapshot.</summary>
    [Parameter]
    public SwitchParameter Keep { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Recipe, $"Run '{string.Join(' ', Command)}' in a one-shot sandbox"))
        {
            return;
        }

        var tag = SandboxRunner.NewTag(Recipe);
        var activity = $"Start-ForkdSandbox {Recipe}";
        try
        {
            var request = new SnapshotRequest
            {
                Tag = tag,
                Recipe = Recipe,
                KernelPath = "",
                MemoryMiB = MemoryMiB,
                Accelerator = Accelerator,
                Volumes = [.. Volume.Select(ParseVolume)],
                CreatedBy = $"Forkd {MyInvocation.MyCommand.Module?.Version?.ToString() ?? "0.0.0"} (Start-ForkdSandbox)",
            };
            var memoryGiven = MyInvocation.BoundParameters.ContainsKey(nameof(MemoryMiB));
            var result = RunEngine(async call =>
            {
                var images = call.Progress<Forkd.Core.Guest.GuestBuildProgress>(3, "Guest image", p => ($"{p.Activity}: {p.Status}", p.PercentComplete));
                var resolved = await Engine.Recipes.ResolveAsync(request, memoryGiven, images, call.Verbose, call.CancellationToken).ConfigureAwait(false);
                var progress = call.Progress<SnapshotProgress>(1, activity, p => (p.Stage, p.Percent));
                return await Engine.Sandboxes().RunAsync(resolved, Command, TimeSpan.FromSeconds(TimeoutSec), Keep, progress, call.Verbose,
                    call.CancellationToken).ConfigureAwait(false);
            });
            if (result.Kept)
            {
                WriteVerbose($"kept snapshot '{result.Tag}' and child {result.ChildId}");
            }

            WriteObject(result);
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex, Recipe);
        }
    }

    private VolumeSpec ParseVolume(string spec)
    {
        var volume = Volumes.Parse(spec);
        return volume with { HostPath = GetUnresolvedProviderPathFromPSPath(volume.HostPath) };
    }
}
