using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Forkd.Core.Guest;

/// <summary>A package as the local apt index describes its candidate version.</summary>
internal sealed record AptPackage(string Name, string Version, string Architecture, string FileName, string Sha256, string Depends);

/// <summary>
/// Resolves Debian packages to exact candidate versions (apt-cache, from the local index; one
/// <c>apt-get update</c> when the index lacks them) and downloads them once into a shared
/// .deb cache, verified against the index's SHA-256.
/// </summary>
internal sealed partial class DebianPackages(string debCacheDirectory)
{
    private const string AptListsDirectory = "/var/lib/apt/lists";
    private bool _updated;
    private string? _updateFailure;

    /// <summary>
    /// apt-cache takes a second or more per call (it decompresses the index), so resolutions are
    /// remembered in the cache for as long as the apt index files are unchanged.
    /// </summary>
    private string ResolutionCachePath => Path.Combine(debCacheDirectory, "resolved.json");

    public async Task<IReadOnlyList<AptPackage>> ResolveAsync(IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        var stamp = IndexStamp();
        var remembered = LoadResolutions(stamp);
        if (names.All(remembered.ContainsKey))
        {
            return [.. names.Select(n => remembered[n])];
        }

        var found = await ShowAsync(names, cancellationToken).ConfigureAwait(false);
        var missing = names.Where(n => !found.ContainsKey(n)).ToList();
        if (missing.Count > 0 && !_updated)
        {
            _updated = true;
            remembered.Clear(); // resolved against the index the update replaces
            try
            {
                await ToolRunner.RunCheckedAsync("AptUpdateFailed", "apt-get", ["update", "-qq"], null, cancellationToken).ConfigureAwait(false);
                found = await ShowAsync(names, cancellationToken).ConfigureAwait(false);
                missing = [.. names.Where(n => !found.ContainsKey(n))];
            }
            catch (ForkdException ex) when (ex.ErrorId == "AptUpdateFailed")
            {
                _updateFailure = ex.Message; // not root, or offline: the index stays as it is
            }
        }

        if (missing.Count > 0)
        {
            throw new ForkdException("PackageNotFound", ForkdErrorKind.NotFound,
                $"apt knows no package {string.Join(", ", missing)}", missing[0])
            {
                Hint = _updateFailure is null
                    ? "Check the recipe's package names against `apt-cache search`; the image is built from Debian packages only."
                    : $"Refreshing the apt index failed ({_updateFailure}); run `apt-get update` as root, then check the names with `apt-cache search`.",
            };
        }

        foreach (var (k, v) in found)
        {
            remembered[k] = v;
        }

        SaveResolutions(IndexStamp(), remembered);
        return [.. names.Select(n => found[n])];
    }

    /// <summary>Names, sizes and times of the apt index files: any <c>apt-get update</c> that changes them changes this.</summary>
    private static string IndexStamp()
    {
        if (!Directory.Exists(AptListsDirectory))
        {
            return "";
        }

        var text = string.Join('\n', new DirectoryInfo(AptListsDirectory).EnumerateFiles()
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Name} {f.Length} {f.LastWriteTimeUtc.Ticks}")));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    private Dictionary<string, AptPackage> LoadResolutions(string stamp)
    {
        try
        {
            var saved = JsonSerializer.Deserialize<SavedResolutions>(File.ReadAllText(ResolutionCachePath));
            if (saved is not null && stamp.Length > 0 && saved.IndexStamp == stamp)
            {
                return new Dictionary<string, AptPackage>(saved.Packages, StringComparer.Ordinal);
            }
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            // no usable memory of earlier resolutions: ask apt
        }

        return new Dictionary<string, AptPackage>(StringComparer.Ordinal);
    }

    private void SaveResolutions(string stamp, Dictionary<string, AptPackage> packages)
    {
        Directory.CreateDirectory(debCacheDirectory);
        var temp = ResolutionCachePath + ".tmp-" + Environment.ProcessId;
        File.WriteAllText(temp, JsonSerializer.Serialize(new SavedResolutions(stamp, packages)));
        File.Move(temp, ResolutionCachePath, overwrite: true);
    }

    private sealed record SavedResolutions(string IndexStamp, Dictionary<string, AptPackage> Packages);

    /// <summary>The versioned package a meta package (linux-image-cloud-amd64) depends on, resolved.</summary>
    public async Task<AptPackage> ResolveKernelAsync(string kernelPackage, CancellationToken cancellationToken)
    {
        var meta = (await ResolveAsync([kernelPackage], cancellationToken).ConfigureAwait(false))[0];
        if (VersionedKernel().IsMatch(meta.Name))
        {
            return meta;
        }

        var target = meta.Depends.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(d => d.Split(' ', 2)[0])
            .FirstOrDefault(d => d.StartsWith("linux-image-", StringComparison.Ordinal))
            ?? throw new ForkdException("KernelPackageNotFound", ForkdErrorKind.NotFound,
                $"{kernelPackage} depends on no linux-image package (Depends: {meta.Depends})", kernelPackage);
        return (await ResolveAsync([target], cancellationToken).ConfigureAwait(false))[0];
    }

    [GeneratedRegex(@"^linux-image-[0-9]")]
    private static partial Regex VersionedKernel();

    /// <summary>Path of the verified .deb in the cache, downloading it first when needed.</summary>
    public async Task<string> DownloadAsync(AptPackage package, string scratchDirectory, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(debCacheDirectory);
        var cached = Path.Combine(debCacheDirectory, Path.GetFileName(package.FileName));
        if (File.Exists(cached) && await HashMatchesAsync(cached, package.Sha256, cancellationToken).ConfigureAwait(false))
        {
            return cached;
        }

        var into = Path.Combine(scratchDirectory, "download-" + package.Name);
        Directory.CreateDirectory(into);
        await ToolRunner.RunCheckedAsync("PackageDownloadFailed", "apt-get",
            ["download", "-q", $"{package.Name}={package.Version}"], into, cancellationToken).ConfigureAwait(false);
        var deb = Directory.GetFiles(into, "*.deb").SingleOrDefault()
            ?? throw new ForkdException("PackageDownloadFailed", ForkdErrorKind.Failed, $"apt-get download {package.Name} wrote no .deb", package.Name);
        if (!await HashMatchesAsync(deb, package.Sha256, cancellationToken).ConfigureAwait(false))
        {
            throw new ForkdException("PackageHashMismatch", ForkdErrorKind.InvalidData,
                $"{Path.GetFileName(deb)} does not match the SHA-256 in the apt index", package.Name);
        }

        // Same filesystem as the cache? Not necessarily: copy to a temp name there, then rename.
        var temp = cached + ".tmp-" + Environment.ProcessId;
        File.Copy(deb, temp, overwrite: true);
        File.Move(temp, cached, overwrite: true);
        Directory.Delete(into, recursive: true);
        return cached;
    }

    private static async Task<bool> HashMatchesAsync(string file, string sha256, CancellationToken cancellationToken)
    {
        await using var stream = File.OpenRead(file);
        var hash = await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        return string.Equals(Convert.ToHexStringLower(hash), sha256, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<Dictionary<string, AptPackage>> ShowAsync(IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        // apt-cache fails as a whole when one name is unknown; ask one by one only then.
        var result = await ToolRunner.RunAsync("apt-cache", ["show", "--no-all-versions", .. names], null, cancellationToken).ConfigureAwait(false);
        var found = Parse(result.Stdout);
        if (result.ExitCode != 0 && names.Count > 1)
        {
            foreach (var name in names.Where(n => !found.ContainsKey(n)))
            {
                var one = await ToolRunner.RunAsync("apt-cache", ["show", "--no-all-versions", name], null, cancellationToken).ConfigureAwait(false);
                foreach (var (k, v) in Parse(one.Stdout))
                {
                    found[k] = v;
                }
            }
        }

        return found;
    }

    internal static Dictionary<string, AptPackage> Parse(string text)
    {
        var packages = new Dictionary<string, AptPackage>(StringComparer.Ordinal);
        foreach (var stanza in text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var line in stanza.Split('\n'))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0 && !char.IsWhiteSpace(line[0]))
                {
                    fields[line[..colon]] = line[(colon + 1)..].Trim();
                }
            }

            if (fields.TryGetValue("Package", out var name) && fields.TryGetValue("Version", out var version)
                && fields.TryGetValue("Filename", out var fileName) && fields.TryGetValue("SHA256", out var sha)
                && !packages.ContainsKey(name))
            {
                packages[name] = new AptPackage(name, version, fields.GetValueOrDefault("Architecture", ""), fileName, sha,
                    fields.GetValueOrDefault("Depends", ""));
            }
        }

        return packages;
    }
}
