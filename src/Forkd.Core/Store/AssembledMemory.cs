using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>
/// The memory image of a diff snapshot: a copy of its parent's image with the diff applied, cached as the snapshot's
/// <c>memory.bin</c> so children map one file. The cache is used only while its key (<c>memory.bin.assembled</c>,
/// written by us after the image) matches: the SHA-256 of the parent image it was built from, the diff file's stat
/// identity and the cached image's own (size, inode, mtime, ctime). Any write to either file changes its ctime, so a
/// modified cache, a planted file or link at that name, or one built from another parent is never mapped: it is
/// assembled again, before any child sees it. Files in the data dir may be planted by others; a key cannot vouch for
/// content it did not see being written, so everything that does not match is rebuilt rather than trusted.
/// </summary>
public static class AssembledMemory
{
    public const string KeySuffix = ".assembled";

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>The path of the assembled image of the diff snapshot in <paramref name="snapshotDirectory"/>, (re)built when its key does not match.</summary>
    /// <param name="parentImage">The parent's memory image, already verified against <paramref name="parentSha256"/>.</param>
    public static string Ensure(string snapshotDirectory, SnapshotMetadata metadata, string parentImage, string parentSha256, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var image = metadata.ResolveMemory(snapshotDirectory);
        var diff = DiffPath(snapshotDirectory, metadata);
        var diffKey = MemoryImageHash.Key(diff);
        if (IsValid(image, diffKey, parentSha256))
        {
            return image;
        }

        RemoveDeadAssemblies(image);
        var temp = $"{image}.assembling-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            SparseCopy.Copy(parentImage, temp, cancellationToken);
            MemoryDiff.ApplyTo(diff, temp, cancellationToken);
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            // rename(2) replaces whatever is at the name (a stale or planted file, a link) without following it; a child
            // that maps the old file keeps its own mapping.
            File.Move(temp, image, overwrite: true);
            var entry = new KeyEntry(parentSha256, diffKey, MemoryImageHash.Key(image));
            SafeFile.WriteAtomicNoFollow(image + KeySuffix, JsonSerializer.Serialize(entry, Options));
        }
        finally
        {
            File.Delete(temp);
        }

        return image;
    }

    /// <summary>The diff file of a diff snapshot, by its bare name inside the snapshot dir.</summary>
    public static string DiffPath(string snapshotDirectory, SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return Path.Combine(snapshotDirectory, Path.GetFileName(metadata.MemoryDiff ?? MemoryDiff.FileName));
    }

    /// <summary>True when the cached image is a regular file (not a link) whose key says we built it, from this parent and diff, and nobody changed it since.</summary>
    private static bool IsValid(string image, string diffKey, string parentSha256)
    {
        var info = new FileInfo(image);
        if (!info.Exists || info.LinkTarget is not null)
        {
            return false;
        }

        KeyEntry? entry;
        try
        {
            var text = SafeFile.ReadDataFile(image + KeySuffix, "SnapshotCacheInvalid", 4096);
            entry = text is null ? null : JsonSerializer.Deserialize<KeyEntry>(text, Options);
        }
        catch (Exception ex) when (ex is ForkdException or JsonException)
        {
            return false; // a damaged or planted key: rebuild, never trust
        }

        return entry is not null &&
               string.Equals(entry.ParentSha256, parentSha256, StringComparison.OrdinalIgnoreCase) &&
               entry.Diff == diffKey &&
               entry.Image == MemoryImageHash.Key(image);
    }

    /// <summary>Deletes half-assembled images whose process died (a crash mid-assembly); a live process's stays.</summary>
    private static void RemoveDeadAssemblies(string image)
    {
        var prefix = Path.GetFileName(image) + ".assembling-";
        foreach (var stale in Directory.EnumerateFiles(Path.GetDirectoryName(image)!, prefix + "*"))
        {
            var pid = Path.GetFileName(stale)[prefix.Length..].Split('-')[0];
            if (int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && !ProcessControl.IsAlive(p))
            {
                File.Delete(stale);
            }
        }
    }

    private sealed record KeyEntry(
        [property: JsonPropertyName("parent_sha256")] string ParentSha256,
        [property: JsonPropertyName("diff")] string Diff,
        [property: JsonPropertyName("image")] string Image);
}
