using Forkd.Core.Guest;
using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>Turns a recipe name into the guest a snapshot boots: built once from Debian packages, then served from the cache.</summary>
public sealed class RecipeImages
{
    private readonly ForkdPaths _paths;

    public RecipeImages(ForkdPaths paths)
    {
        _paths = paths ?? throw new ArgumentNullException(nameof(paths));
    }

    public GuestImageBuilder Images => new(_paths);

    public RootDiskBuilder RootDisks => new(_paths);

    /// <summary>Every recipe name, plain images and root-disk recipes alike.</summary>
    public IReadOnlyList<string> RecipeNames => Images.RecipeNames;

    /// <summary>
    /// Fills kernel, initramfs, root disk, kernel arguments and the recipe's warm-up into <paramref name="request"/>.
    /// <paramref name="memoryGiven"/>: the caller chose the memory size, so the recipe's default does not apply.
    /// </summary>
    public async Task<SnapshotRequest> ResolveAsync(SnapshotRequest request, bool memoryGiven, IProgress<GuestBuildProgress>? progress,
        Action<string>? log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var rootDisks = RootDisks;
        if (rootDisks.IsRootDiskRecipe(request.Recipe))
        {
            var disk = await rootDisks.BuildAsync(request.Recipe, false, progress, cancellationToken).ConfigureAwait(false);
            log?.Invoke($"root disk {disk.Recipe} ({disk.ContentHash[..12]}): {disk.Format} {disk.RootDiskBytes / (1 << 20)} MiB, " +
                        $"{disk.Packages.Count} packages, kernel {disk.KernelVersion}");
            return request with
            {
                KernelPath = disk.KernelPath,
                InitramfsPath = disk.InitramfsPath,
                RootDiskPath = disk.RootDiskPath,
                KernelCommandLine = disk.KernelCommandLine,
                MemoryMiB = memoryGiven ? request.MemoryMiB : disk.MemoryMiB,
                WaitForWarmupBridge = disk.WarmupCommand is not null,
            };
        }

        var image = await Images.BuildAsync(request.Recipe, false, progress, cancellationToken).ConfigureAwait(false);
        log?.Invoke($"guest image {image.Recipe} ({image.ContentHash[..12]}): kernel {image.KernelVersion}, Python {image.PythonVersion}");
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
}
