using System.Management.Automation;
using Forkd.Core.Engine;
using Forkd.Core.Guest;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>Turns a recipe name into the guest image a snapshot boots (built once, then served from the image cache).</summary>
internal static class RecipeImages
{
    public static SnapshotRequest Resolve(SnapshotRequest request, string recipe, bool memoryGiven, ForkdPaths paths, PipelinePump pump,
        Cmdlet cmdlet, CancellationToken cancellationToken)
    {
        var rootDisks = new RootDiskBuilder(paths);
        if (rootDisks.IsRootDiskRecipe(recipe))
        {
            return ResolveRootDisk(rootDisks, request, recipe, memoryGiven, pump, cmdlet, cancellationToken);
        }

        var builder = new GuestImageBuilder(paths);
        var progress = pump.Progress<GuestBuildProgress>(p =>
            cmdlet.WriteProgress(new ProgressRecord(3, p.Activity, p.Status) { PercentComplete = Math.Clamp(p.PercentComplete, 0, 100) }));
        var image = pump.Run(Task.Run(() => builder.BuildAsync(recipe, false, progress, cancellationToken), cancellationToken));
        cmdlet.WriteVerbose($"guest image {image.Recipe} ({image.ContentHash[..12]}): kernel {image.KernelVersion}, Python {image.PythonVersion}");

        // The recipe's own warm-up (its imports) runs first, then the caller's code.
        var warmup = string.Join("\n", new[] { image.WarmupCode, request.WarmupCode }.Where(c => !string.IsNullOrWhiteSpace(c)));
        return request with
        {
            KernelPath = image.KernelPath,
            InitramfsPath = image.InitramfsPath,
            KernelCommandLine = image.KernelCommandLine,
            MemoryMiB = memoryGiven ? request.MemoryMiB : image.MemoryMiB,
            WarmupCode = warmup.Length == 0 ? null : warmup,
        };
    }

    /// <summary>Big guests: kernel, a small boot initramfs and the shared read-only root disk.</summary>
    private static SnapshotRequest ResolveRootDisk(RootDiskBuilder builder, SnapshotRequest request, string recipe, bool memoryGiven,
        PipelinePump pump, Cmdlet cmdlet, CancellationToken cancellationToken)
    {
        var progress = new Progress<GuestBuildProgress>(p => pump.Post(() =>
            cmdlet.WriteProgress(new ProgressRecord(3, p.Activity, p.Status) { PercentComplete = Math.Clamp(p.PercentComplete, 0, 100) })));
        var image = pump.Run(Task.Run(() => builder.BuildAsync(recipe, false, progress, cancellationToken), cancellationToken));
        cmdlet.WriteVerbose($"root disk {image.Recipe} ({image.ContentHash[..12]}): {image.Format} {image.RootDiskBytes / (1 << 20)} MiB, " +
                            $"{image.Packages.Count} packages, kernel {image.KernelVersion}");
        return request with
        {
            KernelPath = image.KernelPath,
            InitramfsPath = image.InitramfsPath,
            RootDiskPath = image.RootDiskPath,
            KernelCommandLine = image.KernelCommandLine,
            MemoryMiB = memoryGiven ? request.MemoryMiB : image.MemoryMiB,
            WaitForWarmupBridge = image.WarmupCommand is not null,
        };
    }
}
