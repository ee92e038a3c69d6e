using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.PowerShell.Commands;

/// <summary>Boots a parent VM, warms it up, pauses and saves it as a snapshot children fork from.</summary>
[Cmdlet(VerbsCommon.New, "ForkdSnapshot", SupportsShouldProcess = true, DefaultParameterSetName = RecipeSet, HelpUri = HelpLinks.Base + "New-ForkdSnapshot.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class NewForkdSnapshotCommand : ForkdJobCmdlet
{
    private const string RecipeSet = "Recipe";
    private const string KernelSet = "Kernel";

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string Tag { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ParameterSetName = RecipeSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RecipeCompleter))]
    public string Recipe { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = KernelSet)]
    [ValidateNotNullOrEmpty]
    public string KernelPath { get; set; } = "";

    [Parameter(ParameterSetName = KernelSet)]
    [ValidateNotNullOrEmpty]
    public string? InitramfsPath { get; set; }

    [Parameter(ParameterSetName = KernelSet)]
    public string KernelCommandLine { get; set; } = "";

    [Parameter]
    [ValidateRange(64, 65536)]
    public int MemoryMiB { get; set; } = 256;

    [Parameter]
    [ValidateRange(1, 64)]
    public int VcpuCount { get; set; } = 1;

    [Parameter]
    public string? WarmupCode { get; set; }

    [Parameter]
    public AcceleratorPreference Accelerator { get; set; } = AcceleratorPreference.Auto;

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Volumes as <c>HOST:GUEST[:ro]</c> (forkd's <c>--volume</c>), attached to the parent and every child.</summary>
    [Parameter]
    public string[] Volume { get; set; } = [];

    /// <summary>The hypervisor: QEMU (default; KVM or TCG) or Firecracker (KVM only). Recorded in the snapshot.</summary>
    [Parameter]
    public BackendKind Backend { get; set; } = Forkd.Core.BackendKind.Qemu;

    /// <summary>Give the guest a network card, so Invoke-ForkdFork -Network can put children on networks.</summary>
    [Parameter]
    public SwitchParameter Network { get; set; }

    protected override void EndInput()
    {
        CheckTag(Tag, terminating: true);
        // -WhatIf reports what would really happen: the checks a real run makes first come before the question.
        try
        {
            if (Force)
            {
                Store.ThrowIfNotReplaceable(Tag);
            }
            else
            {
                Store.ThrowIfExists(Tag);
            }
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex, Tag);
        }

        try
        {
            CheckInputFiles();
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex); // the missing file is the target
        }

        if (!ShouldProcess(Tag, Force ? "Create snapshot (replacing any existing one)" : "Create snapshot"))
        {
            return;
        }

        var activity = $"New-ForkdSnapshot {Tag}";
        try
        {
            var result = RunEngine(async call =>
            {
                var request = await ResolveImageAsync(call).ConfigureAwait(false);
                var progress = call.Progress<SnapshotProgress>(1, activity, p => (p.Stage, p.Percent));
                return await Engine.CreateSnapshotAsync(request, Backend, progress, call.Verbose, call.CancellationToken).ConfigureAwait(false);
            });
            WriteVerbose($"snapshot '{Tag}': accelerator {result.Accelerator.Accelerator.ToString().ToUpperInvariant()}, boot to agent " +
                         $"{result.BootTime.TotalSeconds:0.00} s, warm-up {result.WarmupTime.TotalSeconds:0.00} s, save {result.SaveTime.TotalMilliseconds:0} ms");
            // How the snapshot was made rides along as note properties: the accelerator's reason and the timings.
            var output = PSObject.AsPSObject(result.Snapshot);
            output.Properties.Add(new PSNoteProperty("AcceleratorReason", result.Accelerator.Reason));
            output.Properties.Add(new PSNoteProperty("BootTime", result.BootTime));
            output.Properties.Add(new PSNoteProperty("WarmupTime", result.WarmupTime));
            output.Properties.Add(new PSNoteProperty("SaveTime", result.SaveTime));
            WriteObject(output);
        }
        catch (ForkdException ex)
        {
            // Whatever failed while booting, the host check is where to look first; bad input has its own advice.
            // The error's own target (a missing file, the tag) stays its TargetObject.
            var input = ex.Kind is ForkdErrorKind.NotFound or ForkdErrorKind.InvalidArgument or ForkdErrorKind.AlreadyExists or ForkdErrorKind.InUse;
            ThrowForkdError(ex.Hint is not null || input ? ex : new ForkdException(ex.ErrorId, ex.Kind, ex.Message, ex.Target, ex)
            {
                Hint = "Run Test-ForkdHost: it checks KVM (with a real boot), QEMU, Firecracker, cgroups and networking on this host.",
            }, ex.Target ?? Tag);
        }
    }

    /// <summary>
    /// The files a real run needs before anything boots (kernel, initramfs, volume images): a missing one is the
    /// same error under -WhatIf, with its path as the TargetObject.
    /// </summary>
    private void CheckInputFiles()
    {
        if (ParameterSetName == KernelSet)
        {
            RequireFile(GetUnresolvedProviderPathFromPSPath(KernelPath), "KernelNotFound", "kernel");
            if (InitramfsPath is not null)
            {
                RequireFile(GetUnresolvedProviderPathFromPSPath(InitramfsPath), "InitramfsNotFound", "initramfs");
            }
        }

        _ = Volumes.Validate([.. Volume.Select(ParseVolume)]);
    }

    private static void RequireFile(string path, string errorId, string what)
    {
        if (!File.Exists(path))
        {
            throw new ForkdException(errorId, ForkdErrorKind.NotFound, $"{what} not found: {path}", path);
        }
    }

    private VolumeSpec ParseVolume(string spec)
    {
        var volume = Volumes.Parse(spec);
        return volume with { HostPath = GetUnresolvedProviderPathFromPSPath(volume.HostPath) };
    }

    private async Task<SnapshotRequest> ResolveImageAsync(EngineCall call)
    {
        var common = new SnapshotRequest
        {
            Tag = Tag,
            Recipe = ParameterSetName == KernelSet ? "custom" : Recipe,
            KernelPath = "",
            MemoryMiB = MemoryMiB,
            VcpuCount = VcpuCount,
            WarmupCode = WarmupCode,
            Accelerator = Accelerator,
            Force = Force,
            Volumes = [.. Volume.Select(ParseVolume)],
            Network = Network,
            CreatedBy = $"Forkd {MyInvocation.MyCommand.Module?.Version?.ToString() ?? "0.0.0"}",
        };
        if (ParameterSetName == KernelSet)
        {
            return common with
            {
                KernelPath = GetUnresolvedProviderPathFromPSPath(KernelPath),
                InitramfsPath = InitramfsPath is null ? null : GetUnresolvedProviderPathFromPSPath(InitramfsPath),
                KernelCommandLine = KernelCommandLine,
            };
        }

        var progress = call.Progress<Forkd.Core.Guest.GuestBuildProgress>(3, "Guest image", p => ($"{p.Activity}: {p.Status}", p.PercentComplete));
        return await Engine.Recipes.ResolveAsync(common, MyInvocation.BoundParameters.ContainsKey(nameof(MemoryMiB)), progress, call.Verbose,
            call.CancellationToken).ConfigureAwait(false);
    }
}
