using System.Globalization;
using Forkd.Core.Host;

namespace Forkd.Core.Guest;

/// <summary>
/// How content-addressed cache entries (guest images, root disks) are published: built in a staging
/// dir named <c>&lt;prefix&gt;…-&lt;pid&gt;-&lt;random&gt;</c> beside the cache, then renamed into place.
/// </summary>
internal static class CacheEntries
{
    /// <summary>A fresh staging dir name beside the cache entries: <c>&lt;prefix&gt;&lt;name&gt;-&lt;hash16&gt;-&lt;pid&gt;-&lt;random&gt;</c>.</summary>
    public static string StagingPath(string cacheDirectory, string stagingPrefix, string name, string hash) =>
        Path.Combine(cacheDirectory, string.Create(CultureInfo.InvariantCulture,
            $"{stagingPrefix}{name}-{hash[..16]}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}"));

    /// <summary>Renames <paramref name="staging"/> to <paramref name="finalDirectory"/>; an identical entry published meanwhile wins.</summary>
    public static T Publish<T>(string staging, string finalDirectory, T built, Func<string, T?> load)
        where T : class
    {
        string? previous = null;
        if (Directory.Exists(finalDirectory))
        {
            previous = staging + ".old";
            Directory.Move(finalDirectory, previous);
        }

        try
        {
            Directory.Move(staging, finalDirectory);
        }
        catch (IOException) when (load(finalDirectory) is not null)
        {
            // Another build of the same content won the race; its entry is equivalent.
        }
        finally
        {
            if (previous is not null)
            {
                SafeDelete.Delete(previous);
            }
        }

        return load(finalDirectory) ?? built;
    }

    /// <summary>Removes staging dirs whose building process is gone (a build killed with SIGKILL).</summary>
    public static void SweepStaleStaging(string cacheDirectory, string stagingPrefix)
    {
        foreach (var dir in Directory.EnumerateDirectories(cacheDirectory, stagingPrefix + "*"))
        {
            var parts = Path.GetFileName(dir).Split('-');
            var pid = parts.Length >= 3 && int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : 0;
            if (pid > 0 && pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                SafeDelete.Delete(dir);
            }
        }
    }
}
