using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Store;

/// <summary>
/// SHA-256 of a snapshot's memory image (forkd's <c>parent_content_hash</c>), computed once and remembered in
/// <c>&lt;image&gt;.sha256</c> beside it, keyed by the file's size, inode, mtime and ctime. Any write to the image
/// (or a <c>touch</c> that resets its mtime) changes the ctime, so a changed image is always hashed again and a
/// tampered parent cannot hide behind a stale cache entry; an unchanged one costs one stat per fork.
/// </summary>
public static class MemoryImageHash
{
    public const string Suffix = ".sha256";

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>The hash (lower-case hex) of <paramref name="imagePath"/>, from the cache when the file is unchanged.</summary>
    public static string Get(string imagePath, CancellationToken cancellationToken = default)
    {
        var key = Key(imagePath);
        var cacheFile = imagePath + Suffix;
        var cached = ReadCache(cacheFile);
        if (cached is not null && cached.Key == key)
        {
            return cached.Sha256;
        }

        var hash = Compute(imagePath, cancellationToken);
        // Hashed again after the read: a file that changed while it was being read is not cached.
        if (Key(imagePath) == key)
        {
            TryWriteCache(cacheFile, new CacheEntry(key, hash));
        }

        return hash;
    }

    public static string Compute(string imagePath, CancellationToken cancellationToken = default)
    {
        using var file = new FileStream(imagePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        int n;
        while ((n = file.Read(buffer)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            sha.AppendData(buffer, 0, n);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>size:inode:mtime-ns:ctime-ns of the file.</summary>
    internal static unsafe string Key(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat st;
        fixed (byte* p = bytes)
        {
            if (LibC.stat(p, &st) != 0)
            {
                throw new ForkdException("SnapshotChainBroken", ForkdErrorKind.InvalidData, $"memory image {path} is missing", path)
                { Hint = "A snapshot in the chain lost its memory image; remove the chain or re-create it." };
            }
        }

        return FormattableString.Invariant(
            $"{(long)st.st_size}:{(ulong)st.st_ino}:{(long)st.st_mtim.tv_sec}.{(long)st.st_mtim.tv_nsec}:{(long)st.st_ctim.tv_sec}.{(long)st.st_ctim.tv_nsec}");
    }

    private static CacheEntry? ReadCache(string file)
    {
        try
        {
            return File.Exists(file) ? JsonSerializer.Deserialize<CacheEntry>(File.ReadAllText(file), Options) : null;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static void TryWriteCache(string file, CacheEntry entry)
    {
        var temp = $"{file}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp";
        try
        {
            File.WriteAllText(temp, JsonSerializer.Serialize(entry, Options));
            File.Move(temp, file, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp); // a read-only store still works; it hashes every time
        }
    }

    private sealed record CacheEntry(
        [property: JsonPropertyName("key")] string Key,
        [property: JsonPropertyName("sha256")] string Sha256);
}
