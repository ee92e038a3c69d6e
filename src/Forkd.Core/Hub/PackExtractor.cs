using System.Buffers;
using System.Text;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Hub;

/// <summary>
/// Reads a pack and writes its files into an empty directory, refusing anything a v1 pack does not
/// contain before a byte of it is written: the manifest must come first; every later entry must be a
/// regular file the manifest declares, once, with the declared size. Hashes are checked as each file
/// ends. Zero pages are left as holes (seek, not write), so a memory image costs only its used pages.
/// </summary>
public static class PackExtractor
{
    private const int BufferSize = 1024 * 1024;
    private const int PageSize = 4096;

    /// <summary>
    /// Extracts <paramref name="source"/> into <paramref name="directory"/>. <paramref name="onManifest"/> runs
    /// after the manifest is read and before any data is written; it may throw to stop the import.
    /// </summary>
    public static PackManifest Extract(Stream source, string sourceName, string directory, Action<PackManifest> onManifest,
        Action<long>? onCompressedBytes, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(onManifest);
        using var zstd = new ZstdReadStream(source, sourceName);
        var tar = new TarReader(zstd, sourceName);
        var first = tar.Next() ?? throw ManifestMissing(sourceName, "the archive is empty");
        var firstName = CheckEntry(first, sourceName);
        if (firstName != PackFormat.ManifestName)
        {
            throw ManifestMissing(sourceName, $"its first entry is '{Printable(firstName)}', and a forkd pack starts with {PackFormat.ManifestName}");
        }

        var manifest = ReadManifest(tar, first, sourceName);
        onManifest(manifest);
        foreach (var link in manifest.Chain)
        {
            Directory.CreateDirectory(Path.Combine(directory, link.Tag)); // a v2 link's files go under its (valid) tag
        }

        var declared = manifest.Files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (tar.Next() is { } entry)
        {
            ct.ThrowIfCancellationRequested();
            var name = CheckEntry(entry, sourceName);
            if (name == PackFormat.ManifestName || !seen.Add(name))
            {
                throw Error("PackDuplicateEntry", sourceName, $"'{Printable(name)}' appears twice in the archive");
            }

            if (!declared.TryGetValue(name, out var expected))
            {
                throw Error("PackUnexpectedEntry", sourceName, $"entry '{Printable(name)}' is not declared in the manifest");
            }

            if (entry.Size > expected.Size)
            {
                throw Error("PackEntryTooLarge", sourceName,
                    $"entry '{name}' is {entry.Size} bytes but the manifest declares {expected.Size}; refusing to read it");
            }

            if (entry.Size < expected.Size)
            {
                throw Integrity(sourceName, $"entry '{name}' is {entry.Size} bytes but the manifest declares {expected.Size}");
            }

            var actual = WriteFile(tar, Path.Combine(directory, name), entry, () => onCompressedBytes?.Invoke(zstd.CompressedBytesRead), ct);
            if (!string.Equals(actual, expected.Sha256, StringComparison.Ordinal))
            {
                throw Integrity(sourceName, $"{name} has sha256 {actual} but the manifest says {expected.Sha256}");
            }
        }

        var missing = declared.Keys.Where(k => !seen.Contains(k)).ToList();
        if (missing.Count > 0)
        {
            throw Error("PackFileMissing", sourceName, $"the manifest declares {string.Join(", ", missing)} but the archive does not contain it");
        }

        onCompressedBytes?.Invoke(zstd.CompressedBytesRead);
        return manifest;
    }

    private static PackManifest ReadManifest(TarReader tar, TarEntryHeader entry, string source)
    {
        if (entry.Size > PackFormat.MaxManifestBytes)
        {
            throw Error("PackManifestInvalid", source, $"manifest.toml is {entry.Size} bytes; a manifest is never larger than {PackFormat.MaxManifestBytes}");
        }

        var bytes = new byte[entry.Size];
        tar.Read(bytes);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw Error("PackManifestInvalid", source, "manifest.toml is not UTF-8 text", ex);
        }

        var manifest = PackManifest.Parse(text, source);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in manifest.Files)
        {
            if (!IsAllowed(manifest, file.Path))
            {
                throw Error("PackManifestInvalid", source, manifest.IsChain
                    ? $"the manifest declares '{Printable(file.Path)}'; a v2 pack holds only <link tag>/ followed by {string.Join(", ", PackFormat.DataFiles)} (the root) or {MemoryDiff.FileName} in place of {SnapshotFiles.Memory} (a diff link)"
                    : $"the manifest declares '{Printable(file.Path)}'; a v1 pack holds only {string.Join(", ", PackFormat.DataFiles)}");
            }

            if (!names.Add(file.Path))
            {
                throw Error("PackManifestInvalid", source, $"the manifest declares '{file.Path}' twice");
            }
        }

        // Every snapshot in the pack needs its vmstate and its memory: the image (a standalone one) or the diff (a link).
        var snapshots = manifest.IsChain ? manifest.Chain.Select(l => (l.Prefix, l.IsRoot)) : [("", true)];
        foreach (var (prefix, standalone) in snapshots)
        {
            foreach (var required in new[] { SnapshotFiles.VmState, standalone ? SnapshotFiles.Memory : MemoryDiff.FileName })
            {
                if (!names.Contains(prefix + required))
                {
                    throw Error("PackIncomplete", source, $"the manifest does not declare '{prefix + required}', so the snapshot could not be forked");
                }
            }
        }

        return manifest;
    }

    /// <summary>v1: one of forkd's bare names. v2: a link's prefix and a name that link may carry (no other path at all).</summary>
    private static bool IsAllowed(PackManifest manifest, string path)
    {
        if (!manifest.IsChain)
        {
            return PackFormat.DataFiles.Contains(path);
        }

        var slash = path.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return false;
        }

        var link = manifest.Chain.FirstOrDefault(l => l.Prefix == path[..(slash + 1)]);
        return link is not null && (link.IsRoot ? PackFormat.DataFiles : PackFormat.DiffLinkFiles).Contains(path[(slash + 1)..]);
    }

    /// <summary>The entry's name with a leading "./" removed, after refusing traversal, links and special files.</summary>
    private static string CheckEntry(TarEntryHeader entry, string source)
    {
        var name = entry.Name;
        // forkd's rule (any "..", a leading '/'), plus NUL and backslash, which no pack needs.
        if (name.Length == 0 || name.Contains("..", StringComparison.Ordinal) || name.StartsWith('/') ||
            name.Contains('\0', StringComparison.Ordinal) || name.Contains('\\', StringComparison.Ordinal))
        {
            throw Error("PackUnsafeEntryName", source, $"refusing entry with an unsafe name '{Printable(name)}'");
        }

        switch (entry.Type)
        {
            case TarEntryType.SymbolicLink:
            case TarEntryType.HardLink:
                throw Error("PackLinkEntry", source,
                    $"refusing {(entry.Type == TarEntryType.SymbolicLink ? "symbolic" : "hard")} link '{Printable(name)}' -> '{Printable(entry.LinkName ?? "")}'; packs hold only regular files");
            case TarEntryType.Regular:
                break;
            default:
                throw Error("PackSpecialEntry", source,
                    $"refusing entry '{Printable(name)}' of type {entry.Type} (tar type '{Printable(entry.TypeFlag.ToString())}'); packs hold only regular files");
        }

        return name.StartsWith("./", StringComparison.Ordinal) ? name[2..] : name;
    }

    /// <summary>
    /// Writes an entry's data where it belongs and returns the SHA-256 of the whole file. A sparse entry's
    /// stored ranges go to their offsets and its holes stay holes (hashed as the zeros they read as); in
    /// either kind, zero pages inside the data are skipped too.
    /// </summary>
    private static string WriteFile(TarReader tar, string path, TarEntryHeader entry, Action reportProgress, CancellationToken ct)
    {
        using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        using var hasher = new BackgroundHasher();
        if (entry.Sparse is not { } map)
        {
            CopyRange(tar, handle, hasher, 0, entry.Size, reportProgress, ct);
        }
        else
        {
            long end = 0;
            for (var i = 0; i < map.Count; i++)
            {
                var (offset, length) = map[i];
                HashZeros(hasher, offset - end, ct);
                CopyRange(tar, handle, hasher, offset, length, reportProgress, ct);
                end = offset + length;
            }

            HashZeros(hasher, map.RealSize - end, ct);
        }

        RandomAccess.SetLength(handle, entry.Size); // trailing zero pages and holes stay holes
        return hasher.Finish();
    }

    private static readonly byte[] Zeros = new byte[BufferSize];

    private static void HashZeros(BackgroundHasher hasher, long count, CancellationToken ct)
    {
        while (count > 0)
        {
            ct.ThrowIfCancellationRequested();
            var n = (int)Math.Min(count, Zeros.Length);
            hasher.Add(Zeros, n, static _ => { }); // never written to, so shared by every queue entry
            count -= n;
        }
    }

    private static void CopyRange(TarReader tar, SafeFileHandle handle, BackgroundHasher hasher, long fileOffset, long length, Action reportProgress, CancellationToken ct)
    {
        long done = 0;
        while (done < length)
        {
            ct.ThrowIfCancellationRequested();
            var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            int n;
            try
            {
                n = tar.Read(buffer.AsSpan(0, (int)Math.Min(BufferSize, length - done)));
                if (n == 0)
                {
                    throw Error("PackSparseMapInvalid", "pack", "an entry's data ends before its sparse map does");
                }

                WriteSkippingZeroPages(handle, buffer.AsSpan(0, n), fileOffset + done);
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw;
            }

            hasher.Add(buffer, n, BackgroundHasher.ReturnToPool); // hashed on another core, then pooled again
            done += n;
            reportProgress();
        }
    }

    private static void WriteSkippingZeroPages(SafeFileHandle handle, ReadOnlySpan<byte> data, long fileOffset)
    {
        var runStart = -1;
        for (var pos = 0; pos < data.Length; pos += PageSize)
        {
            var page = data.Slice(pos, Math.Min(PageSize, data.Length - pos));
            var zero = page.IndexOfAnyExcept((byte)0) < 0;
            if (!zero && runStart < 0)
            {
                runStart = pos;
            }
            else if (zero && runStart >= 0)
            {
                RandomAccess.Write(handle, data[runStart..pos], fileOffset + runStart);
                runStart = -1;
            }
        }

        if (runStart >= 0)
        {
            RandomAccess.Write(handle, data[runStart..], fileOffset + runStart);
        }
    }

    private static ForkdException ManifestMissing(string source, string detail) =>
        Error("PackManifestMissing", source, $"no manifest.toml: {detail}");

    private static ForkdException Integrity(string source, string detail) =>
        new("PackIntegrityMismatch", ForkdErrorKind.InvalidData, $"integrity check failed for {source}: {detail}", source)
        {
            Hint = "The pack is corrupted (a truncated download, bit rot or tampering); fetch it again.",
        };

    private static ForkdException Error(string errorId, string source, string detail, Exception? inner = null) =>
        new(errorId, ForkdErrorKind.InvalidData, $"malformed pack {source}: {detail}", source, inner)
        {
            Hint = "Only import packs from sources you trust; this one does not follow the forkd pack format.",
        };

    internal static string Printable(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
