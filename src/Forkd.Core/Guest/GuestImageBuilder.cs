using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Guest;

/// <summary>A step of an image build, for Write-Progress.</summary>
public sealed record GuestBuildProgress(string Activity, string Status, int PercentComplete);

/// <summary>
/// Builds a recipe's guest image from Debian packages only and caches it by content hash under
/// <c>&lt;cache&gt;/images/&lt;recipe&gt;-&lt;hash&gt;/</c>. A build happens in a work dir; the finished
/// image appears in the cache by one rename, so an interrupted build leaves nothing behind.
/// </summary>
public sealed class GuestImageBuilder
{
    public const string KernelFileName = "vmlinux";
    public const string InitramfsFileName = "initramfs.cpio";

    /// <summary>Bumped whenever the builder changes what it puts into an image, so old cache entries are not reused.</summary>
    private const string BuilderFormat = "forkd-guest-image/2";
    private const string StagingPrefix = ".tmp-";
    private const string PythonRelative = "usr/bin/python3";

    private readonly ForkdPaths _paths;
    private readonly GuestSources _sources;

    public GuestImageBuilder(ForkdPaths paths, GuestSources? sources = null, string? cacheDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        _paths = paths;
        _sources = sources ?? GuestSources.Locate();
        CacheDirectory = Path.GetFullPath(cacheDirectory ?? ResolveCacheDirectory(paths));
    }

    public string CacheDirectory { get; }

    public string ImagesDirectory => Path.Combine(CacheDirectory, "images");

    public GuestSources Sources => _sources;

    /// <summary>The cache dir as <see cref="ForkdPaths.CacheDirectory"/> resolved it (<c>FORKD_CACHE_DIR</c>, else <c>&lt;data&gt;/cache</c>).</summary>
    public static string ResolveCacheDirectory(ForkdPaths paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        return paths.CacheDirectory;
    }

    public IReadOnlyList<string> RecipeNames => GuestRecipe.ListNames(_sources.RecipesDirectory);

    /// <summary>Every complete image in the cache, newest first.</summary>
    public IReadOnlyList<GuestImage> ListCached()
    {
        if (!Directory.Exists(ImagesDirectory))
        {
            return [];
        }

        return [.. Directory.EnumerateDirectories(ImagesDirectory)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Select(GuestImage.TryLoad)
            .OfType<GuestImage>()
            .OrderByDescending(i => i.BuiltAt)];
    }

    /// <summary>The cached image the recipe would build right now (same packages, same guest files), or null.</summary>
    public async Task<GuestImage?> FindCachedAsync(string recipeName, CancellationToken cancellationToken = default)
    {
        var plan = await PlanAsync(recipeName, cancellationToken).ConfigureAwait(false);
        return GuestImage.TryLoad(plan.FinalDirectory);
    }

    private sealed record BuildPlan(GuestRecipe Recipe, DebianPackages Debs, AptPackage Kernel, IReadOnlyList<AptPackage> Packages,
        string Hash, string FinalDirectory);

    private async Task<BuildPlan> PlanAsync(string recipeName, CancellationToken cancellationToken)
    {
        var recipe = GuestRecipe.Load(_sources.RecipesDirectory, recipeName);
        var debs = new DebianPackages(Path.Combine(CacheDirectory, "debs"));
        var kernelPackage = await debs.ResolveKernelAsync(recipe.KernelPackage, cancellationToken).ConfigureAwait(false);
        var packages = await debs.ResolveAsync(recipe.Packages, cancellationToken).ConfigureAwait(false);
        var hash = ContentHash(recipe, [.. packages, kernelPackage], _sources);
        return new BuildPlan(recipe, debs, kernelPackage, packages, hash, Path.Combine(ImagesDirectory, $"{recipe.Name}-{hash[..16]}"));
    }

    /// <summary>Returns the recipe's image from the cache, building it first when it is missing (or when <paramref name="force"/>).</summary>
    public async Task<GuestImage> BuildAsync(string recipeName, bool force = false, IProgress<GuestBuildProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        void Report(string status, int percent) =>
            progress?.Report(new GuestBuildProgress($"Building guest image '{recipeName}'", status, percent));

        Directory.CreateDirectory(ImagesDirectory);
        CacheEntries.SweepStaleStaging(ImagesDirectory, StagingPrefix);
        Report("Resolving Debian packages", 1);
        var (recipe, debs, kernelPackage, packages, hash, finalDirectory) = await PlanAsync(recipeName, cancellationToken).ConfigureAwait(false);
        if (!force && GuestImage.TryLoad(finalDirectory) is { } cached)
        {
            Report("Found in the cache", 100);
            return cached;
        }

        var work = WorkDirectories.Create(_paths, WorkDirKind.Build, recipe.Name);
        var staging = CacheEntries.StagingPath(ImagesDirectory, StagingPrefix, recipe.Name, hash);
        try
        {
            var all = packages.Append(kernelPackage).ToList();
            var files = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < all.Count; i++)
            {
                Report($"Downloading {all[i].Name} {all[i].Version}", 2 + (30 * i / all.Count));
                files[all[i].Name] = await debs.DownloadAsync(all[i], work, cancellationToken).ConfigureAwait(false);
            }

            var root = Path.Combine(work, "root");
            var kernelTree = Path.Combine(work, "kernel");
            Directory.CreateDirectory(root);
            Report($"Unpacking {kernelPackage.Name}", 33);
            await ExtractAsync(files[kernelPackage.Name], kernelTree, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < packages.Count; i++)
            {
                Report($"Unpacking {packages[i].Name}", 40 + (20 * i / packages.Count));
                await ExtractAsync(files[packages[i].Name], root, cancellationToken).ConfigureAwait(false);
            }

            Report("Assembling the root filesystem", 61);
            GuestRootFs.Prune(root, GuestRootFs.CommonPrune.Concat(recipe.Prune));
            GuestRootFs.AddSymlinks(root, recipe.Symlinks);
            await GuestRootFs.AddBusyboxAppletsAsync(root, cancellationToken).ConfigureAwait(false);
            var kernelVersion = GuestRootFs.CopyModules(kernelTree, root);
            GuestRootFs.AddGuestFiles(root, _sources, recipe);

            Report("Checking the agent runs on the image's Python", 66);
            var ping = await GuestRootFs.SmokeTestAsync(root, PythonRelative, cancellationToken).ConfigureAwait(false);
            var numpy = ping["numpy_version"]?.GetValue<string>();
            numpy = numpy == "not-installed" ? null : numpy;
            if (recipe.ExpectNumpy && numpy is null)
            {
                throw new ForkdException("ImageSmokeTestFailed", ForkdErrorKind.Failed,
                    $"recipe '{recipe.Name}' expects NumPy, but the image's agent could not import it", recipe.Name);
            }

            Report("Byte-compiling the agent's modules", 70);
            await GuestRootFs.PrecompileAsync(root, PythonRelative, cancellationToken).ConfigureAwait(false);

            Directory.CreateDirectory(staging);
            Report("Decompressing the kernel to an ELF vmlinux", 75);
            var bzImage = Path.Combine(kernelTree, "boot", "vmlinuz-" + kernelVersion);
            var vmlinux = KernelExtractor.ExtractVmlinux(await File.ReadAllBytesAsync(bzImage, cancellationToken).ConfigureAwait(false), bzImage);
            await File.WriteAllBytesAsync(Path.Combine(staging, KernelFileName), vmlinux, cancellationToken).ConfigureAwait(false);

            Report("Writing the initramfs", 85);
            cancellationToken.ThrowIfCancellationRequested();
            WriteInitramfs(root, Path.Combine(staging, InitramfsFileName));

            var image = new GuestImage
            {
                Recipe = recipe.Name,
                ContentHash = hash,
                Description = recipe.Description,
                Directory = finalDirectory,
                KernelFileName = KernelFileName,
                InitramfsFileName = InitramfsFileName,
                KernelCommandLine = "rdinit=/init random.trust_cpu=on",
                KernelVersion = kernelVersion,
                PythonVersion = ping["python_version"]?.GetValue<string>() ?? "",
                NumpyVersion = numpy,
                Packages = [.. all.Select(p => new GuestPackage(p.Name, p.Version, p.Sha256)).OrderBy(p => p.Name, StringComparer.Ordinal)],
                KernelBytes = vmlinux.Length,
                InitramfsBytes = new FileInfo(Path.Combine(staging, InitramfsFileName)).Length,
                MemoryMiB = recipe.MemoryMiB,
                WarmupCode = recipe.WarmupCode,
                BuiltAt = DateTimeOffset.UtcNow,
                BuildSeconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
            };
            image.Save(staging);
            cancellationToken.ThrowIfCancellationRequested();
            Report("Moving the image into the cache", 98);
            return CacheEntries.Publish(staging, finalDirectory, image, GuestImage.TryLoad);
        }
        finally
        {
            SafeDelete.Delete(work);
            SafeDelete.Delete(staging);
        }
    }

    /// <summary>
    /// Deletes a cached image. It is first renamed to a staging name, so it leaves the cache in one
    /// step and a half-deleted image is never listed. VMs already booted from it keep running.
    /// </summary>
    public void Remove(GuestImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var full = Path.GetFullPath(image.Directory);
        if (!string.Equals(Path.GetDirectoryName(full), Path.GetFullPath(ImagesDirectory), StringComparison.Ordinal))
        {
            throw new ForkdException("ImageNotInCache", ForkdErrorKind.InvalidArgument,
                $"{full} is not an image directory of the cache {ImagesDirectory}", full);
        }

        var doomed = Path.Combine(ImagesDirectory, string.Create(CultureInfo.InvariantCulture,
            $"{StagingPrefix}remove-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}"));
        try
        {
            Directory.Move(full, doomed);
        }
        catch (DirectoryNotFoundException ex)
        {
            throw new ForkdException("ImageNotFound", ForkdErrorKind.NotFound, $"no cached image at {full}", full, ex);
        }

        SafeDelete.Delete(doomed);
    }

    /// <summary>The content hash: recipe definition, exact packages (.deb SHA-256) and guest files.</summary>
    internal static string ContentHash(GuestRecipe recipe, IEnumerable<AptPackage> packages, GuestSources sources)
    {
        var text = new StringBuilder();
        text.Append(BuilderFormat).Append('\n').Append(recipe.DefinitionText).Append('\n');
        foreach (var p in packages.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            text.Append(CultureInfo.InvariantCulture, $"deb {p.Name} {p.Version} {p.Sha256.ToLowerInvariant()}\n");
        }

        foreach (var file in new[] { sources.InitPath, sources.AgentPath })
        {
            text.Append(CultureInfo.InvariantCulture, $"file {Path.GetFileName(file)} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)))}\n");
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static async Task ExtractAsync(string deb, string into, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(into);
        await ToolRunner.RunCheckedAsync("PackageExtractFailed", "dpkg-deb", ["-x", deb, into], null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// An uncompressed newc archive: QEMU loads it straight into guest RAM and the kernel need not
    /// decompress it under TCG (measured: gzip costs ~0.6 s more QEMU CPU to the first ping). Every
    /// entry has mtime 0, so the same packages give the same bytes; the .pyc files are
    /// unchecked-hash, so Python never compares times.
    /// </summary>
    internal static void WriteInitramfs(string root, string path)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        using var cpio = new CpioWriter(stream);
        // The kernel opens /dev/console for init before devtmpfs is mounted.
        cpio.AddDirectory("dev", 0x1ED, 0);
        cpio.AddCharDevice("dev/console", 0x180, 0, 5, 1);
        cpio.AddCharDevice("dev/null", 0x1B6, 0, 1, 3);
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (entry.Name == "dev")
            {
                continue;
            }

            var single = Path.Combine(root, entry.Name);
            if (entry is DirectoryInfo dir && dir.LinkTarget is null)
            {
                cpio.AddDirectory(entry.Name, (int)dir.UnixFileMode, 0);
                cpio.AddTree(single, entry.Name);
            }
            else if (entry.LinkTarget is { } target)
            {
                cpio.AddSymlink(entry.Name, target, 0);
            }
            else
            {
                cpio.AddFile(entry.Name, (int)((FileInfo)entry).UnixFileMode, 0, File.ReadAllBytes(single));
            }
        }

        cpio.Finish();
    }
}
