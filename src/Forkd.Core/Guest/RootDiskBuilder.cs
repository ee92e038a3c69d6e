using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Guest;

/// <summary>
/// Builds a recipe's root disk: Debian packages (mmdebstrap, no Docker) plus npm packages and the guest
/// files into a directory, then an ext4 (<c>mkfs.ext4 -d</c>) or squashfs image of it, and a small boot
/// initramfs whose init mounts that disk read-only under a RAM overlay. Cached by content hash under
/// <c>&lt;cache&gt;/rootdisks</c>; built in a Build work dir, published by one rename, and a failed or
/// cancelled build leaves neither a half image nor a mounted chroot behind.
/// </summary>
public sealed class RootDiskBuilder
{
    private const string BuilderFormat = "forkd-rootdisk-v1";
    private const string StagingPrefix = ".staging-";
    public const string RootDiskStageFile = "rootdisk/rootdisk.sh";

    private readonly ForkdPaths _paths;
    private readonly GuestSources _sources;

    public RootDiskBuilder(ForkdPaths paths, GuestSources? sources = null, string? cacheDirectory = null)
    {
        _paths = paths;
        _sources = sources ?? GuestSources.Locate();
        CacheDirectory = cacheDirectory ?? GuestImageBuilder.ResolveCacheDirectory(paths);
    }

    public string CacheDirectory { get; }

    public string RootDisksDirectory => Path.Combine(CacheDirectory, "rootdisks");

    /// <summary>True when <paramref name="recipeName"/> is a root-disk recipe.</summary>
    public bool IsRootDiskRecipe(string recipeName) => RootDiskRecipe.HasRootDisk(_sources.RecipesDirectory, recipeName);

    public async Task<RootDiskImage> BuildAsync(string recipeName, bool force = false, IProgress<GuestBuildProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var recipe = RootDiskRecipe.Load(_sources.RecipesDirectory, recipeName);
        var disk = recipe.RootDisk ?? throw new ForkdException("NotARootDiskRecipe", ForkdErrorKind.InvalidArgument,
            $"recipe '{recipe.Name}' has no rootDisk section", recipe.Name);
        var activity = $"Building root disk '{recipe.Name}'";
        void Report(string status, int percent) => progress?.Report(new GuestBuildProgress(activity, status, percent));

        Directory.CreateDirectory(RootDisksDirectory);
        CacheEntries.SweepStaleStaging(RootDisksDirectory, StagingPrefix);
        Report("Resolving Debian packages", 1);
        var debs = new DebianPackages(Path.Combine(CacheDirectory, "debs"));
        var kernelPackage = await debs.ResolveKernelAsync(recipe.KernelPackage, cancellationToken).ConfigureAwait(false);
        // The root disk's packages are resolved by mmdebstrap against the recipe's suite, not the host's apt
        // index (whose candidates may come from elsewhere), so the key holds their names, not versions.
        var hash = ContentHash(recipe, [kernelPackage]);
        var finalDirectory = Path.Combine(RootDisksDirectory, $"{recipe.Name}-{hash[..16]}");
        if (!force && RootDiskImage.TryLoad(finalDirectory) is { } cached)
        {
            Report("Found in the cache", 100);
            return cached;
        }

        var work = WorkDirectories.Create(_paths, WorkDirKind.Build, recipe.Name);
        var staging = CacheEntries.StagingPath(RootDisksDirectory, StagingPrefix, recipe.Name, hash);
        try
        {
            var root = Path.Combine(work, "root");
            Report($"Installing {string.Join(", ", disk.Packages)} with mmdebstrap", 5);
            await RunMmdebstrapAsync(disk, root, cancellationToken).ConfigureAwait(false);
            Mounts.DetachAllUnder(work); // mmdebstrap unmounts on success; be sure before anything reads the tree

            if (disk.Npm.Count > 0)
            {
                Report($"Installing npm packages {string.Join(", ", disk.Npm)}", 45);
                await InstallNpmAsync(disk.Npm, Path.Combine(root, "opt", "forkd"), cancellationToken).ConfigureAwait(false);
            }

            Report("Adding the init, agent and recipe files", 55);
            RootDiskTree.AddGuestFiles(root, _sources, recipe);
            await RootDiskTree.AddMissingBusyboxCommandsAsync(root, cancellationToken).ConfigureAwait(false);
            var packages = RootDiskTree.InstalledPackages(root);
            RootDiskTree.Slim(root);

            Report($"Unpacking {kernelPackage.Name}", 60);
            var kernelTree = Path.Combine(work, "kernel");
            var kernelDeb = await debs.DownloadAsync(kernelPackage, work, cancellationToken).ConfigureAwait(false);
            Directory.CreateDirectory(kernelTree);
            await ToolRunner.RunCheckedAsync("PackageExtractFailed", "dpkg-deb", ["-x", kernelDeb, kernelTree], null, cancellationToken)
                .ConfigureAwait(false);

            Directory.CreateDirectory(staging);
            var initramfsRoot = Path.Combine(work, "initramfs");
            var kernelVersion = await RootDiskTree.BuildInitramfsTreeAsync(root, kernelTree, initramfsRoot, _sources, cancellationToken)
                .ConfigureAwait(false);
            Report("Writing the boot initramfs", 65);
            GuestImageBuilder.WriteInitramfs(initramfsRoot, Path.Combine(staging, GuestImageBuilder.InitramfsFileName));

            Report("Decompressing the kernel to an ELF vmlinux", 68);
            var bzImage = Path.Combine(kernelTree, "boot", "vmlinuz-" + kernelVersion);
            var vmlinux = KernelExtractor.ExtractVmlinux(await File.ReadAllBytesAsync(bzImage, cancellationToken).ConfigureAwait(false), bzImage);
            await File.WriteAllBytesAsync(Path.Combine(staging, GuestImageBuilder.KernelFileName), vmlinux, cancellationToken).ConfigureAwait(false);

            var diskFile = disk.Format == RootDiskFormat.Squashfs ? "rootdisk.squashfs" : "rootdisk.ext4";
            Report($"Making the {disk.Format.ToString().ToLowerInvariant()} image", 72);
            await MakeImageAsync(disk.Format, root, Path.Combine(staging, diskFile), cancellationToken).ConfigureAwait(false);
            File.SetUnixFileMode(Path.Combine(staging, diskFile), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            var image = new RootDiskImage
            {
                Recipe = recipe.Name,
                ContentHash = hash,
                Description = recipe.Description,
                Directory = finalDirectory,
                KernelFileName = GuestImageBuilder.KernelFileName,
                InitramfsFileName = GuestImageBuilder.InitramfsFileName,
                RootDiskFileName = diskFile,
                Format = disk.Format,
                KernelCommandLine = KernelCommandLine(disk),
                KernelVersion = kernelVersion,
                Packages = packages,
                NpmPackages = disk.Npm,
                RootDiskBytes = new FileInfo(Path.Combine(staging, diskFile)).Length,
                MemoryMiB = recipe.MemoryMiB,
                WarmupCommand = recipe.Env.GetValueOrDefault("FORKD_WARMUP_CMD"),
                BuiltAt = DateTimeOffset.UtcNow,
                BuildSeconds = Math.Round(clock.Elapsed.TotalSeconds, 1),
            };
            image.Save(staging);
            cancellationToken.ThrowIfCancellationRequested();
            Report("Moving the image into the cache", 98);
            return CacheEntries.Publish(staging, finalDirectory, image, RootDiskImage.TryLoad);
        }
        finally
        {
            Mounts.DetachAllUnder(work);
            SafeDelete.Delete(work);
            SafeDelete.Delete(staging);
        }
    }

    /// <summary>The root disk is vda; the rest goes to init and (KEY=VALUE words) into its environment.</summary>
    internal static string KernelCommandLine(RootDiskSpec disk)
    {
        var line = "rdinit=/init random.trust_cpu=on forkd.root=vda";
        if (disk.Format == RootDiskFormat.Squashfs)
        {
            line += " forkd.rootfstype=squashfs";
        }

        return string.IsNullOrWhiteSpace(disk.KernelArguments) ? line : line + " " + disk.KernelArguments.Trim();
    }

    /// <summary>Recipe text (package names, pinned npm versions), the resolved kernel package (.deb SHA-256) and every guest file.</summary>
    internal string ContentHash(RootDiskRecipe recipe, IEnumerable<AptPackage> packages)
    {
        var text = new StringBuilder();
        text.Append(BuilderFormat).Append('\n').Append(recipe.DefinitionText).Append('\n');
        foreach (var p in packages.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            text.Append(CultureInfo.InvariantCulture, $"deb {p.Name} {p.Version} {p.Sha256.ToLowerInvariant()}\n");
        }

        var files = new List<string> { _sources.InitPath, _sources.AgentPath, Path.Combine(_sources.GuestDirectory, RootDiskStageFile) };
        files.AddRange(recipe.RootDisk!.Files.Values.Select(f => Path.Combine(_sources.GuestDirectory, f)));
        foreach (var file in files)
        {
            if (!File.Exists(file))
            {
                throw new ForkdException("GuestFileNotFound", ForkdErrorKind.NotFound, $"recipe '{recipe.Name}' needs {file}, which does not exist", file);
            }

            text.Append(CultureInfo.InvariantCulture,
                $"file {Path.GetRelativePath(_sources.GuestDirectory, file)} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)))}\n");
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static async Task RunMmdebstrapAsync(RootDiskSpec disk, string root, CancellationToken cancellationToken)
    {
        var sources = disk.Sources.Count > 0
            ? disk.Sources
            :
            [
                $"deb http://deb.debian.org/debian {disk.Suite} main",
                $"deb http://deb.debian.org/debian {disk.Suite}-updates main",
                $"deb http://deb.debian.org/debian-security {disk.Suite}-security main",
            ];
        var args = new List<string>
        {
            "--mode=" + (NativeFile.EffectiveUid == 0 ? "root" : "unshare"),
            "--variant=essential",
            "--include=" + string.Join(',', disk.Packages),
            "--aptopt=Acquire::Retries \"3\"",
            // Documentation and translations are dead weight in a sandbox disk.
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            "--quiet",
            disk.Suite,
            root,
        };
        args.AddRange(sources);
        await ToolRunner.RunCheckedAsync("RootDiskPackagesFailed", "mmdebstrap", args, null, cancellationToken).ConfigureAwait(false);
    }

    private static async Task InstallNpmAsync(IReadOnlyList<string> specs, string prefix, CancellationToken cancellationToken)
    {
        foreach (var spec in specs)
        {
            // Exact versions only: the cache key is the recipe text, so a floating range would go stale silently.
            var at = spec.LastIndexOf('@');
            if (at <= 0 || !char.IsAsciiDigit(spec[at + 1]) || spec[(at + 1)..].Any(c => c is '^' or '~' or '*' or '>' or '<' or ' '))
            {
                throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData, $"npm package '{spec}' must be pinned as name@exact-version", spec);
            }
        }

        Directory.CreateDirectory(prefix);
        await ToolRunner.RunCheckedAsync("RootDiskNpmFailed", "npm",
            ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--omit=dev", "--no-package-lock", "--ignore-scripts", .. specs], prefix,
            cancellationToken, environment: new Dictionary<string, string> { ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1" }).ConfigureAwait(false);
    }

    private static async Task MakeImageAsync(RootDiskFormat format, string root, string image, CancellationToken cancellationToken)
    {
        if (format == RootDiskFormat.Squashfs)
        {
            await ToolRunner.RunCheckedAsync("RootDiskImageFailed", "mksquashfs",
                [root, image, "-noappend", "-comp", "zstd", "-no-progress", "-quiet"], null, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Room for the files plus ext4's metadata; the image is never written in a guest, so little slack.
        var bytes = SafeDelete.TreeSize(root);
        var mib = (long)(bytes * 1.15 / (1 << 20)) + 64;
        await ToolRunner.RunCheckedAsync("RootDiskImageFailed", "mkfs.ext4",
            ["-q", "-F", "-d", root, "-L", "forkd-root", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0", image,
                mib.ToString(CultureInfo.InvariantCulture) + "M"], null, cancellationToken).ConfigureAwait(false);
    }
}
