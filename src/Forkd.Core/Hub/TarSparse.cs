using System.Globalization;

namespace Forkd.Core.Hub;

/// <summary>
/// The data map of a GNU sparse tar entry: which byte ranges of the file are stored (in order), the rest
/// being holes. Built and checked while the headers are read, so a bad map is refused before a byte of
/// the entry is written: ranges must be sorted, must not overlap and must end within the real size, and
/// the stored bytes must add up to what the archive holds.
/// </summary>
public sealed class TarSparseMap
{
    /// <summary>A 64 GiB image alternating data and hole pages has 8 Mi ranges; no real map comes close to this.</summary>
    public const int MaxRanges = 16 * 1024 * 1024;

    private readonly List<long> _offsets = [];
    private readonly List<long> _lengths = [];
    private readonly Func<string, Exception> _invalid;
    private long _end;

    internal TarSparseMap(long realSize, Func<string, Exception> invalid)
    {
        _invalid = invalid;
        if (realSize < 0)
        {
            throw invalid($"negative real size {realSize}");
        }

        RealSize = realSize;
    }

    /// <summary>The file's size once its holes are restored.</summary>
    public long RealSize { get; }

    /// <summary>Sum of the stored ranges: the bytes the archive holds for this entry.</summary>
    public long StoredBytes { get; private set; }

    public int Count => _offsets.Count;

    public (long Offset, long Length) this[int index] => (_offsets[index], _lengths[index]);

    internal void Add(long offset, long length)
    {
        if (offset < 0 || length < 0)
        {
            throw _invalid($"range {offset}+{length} is negative");
        }

        if (offset < _end)
        {
            throw _invalid($"range at {offset} overlaps or precedes the previous one, which ends at {_end}");
        }

        if (length > RealSize - offset)
        {
            throw _invalid($"range {offset}+{length} ends beyond the file's real size of {RealSize}");
        }

        if (_offsets.Count >= MaxRanges)
        {
            throw _invalid($"more than {MaxRanges} ranges");
        }

        _offsets.Add(offset);
        _lengths.Add(length);
        _end = offset + length;
        StoredBytes += length;
    }

    internal void RequireStored(long storedBytes)
    {
        if (storedBytes != StoredBytes)
        {
            throw _invalid($"the map stores {StoredBytes} bytes but the entry holds {storedBytes}");
        }
    }

    /// <summary>Parses one of the map's decimal numbers (PAX forms).</summary>
    internal long Number(ReadOnlySpan<char> text, string what) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw _invalid($"{what} '{new string(text[..Math.Min(text.Length, 40)])}' is not a number");

    /// <summary>Builds the map of a PAX sparse entry (GNU formats 0.0 and 0.1; 1.0 keeps its map in the data).</summary>
    internal static TarSparseMap? FromPax(IReadOnlyList<KeyValuePair<string, string>> records, Func<string, Exception> invalid, out bool inData)
    {
        inData = false;
        string? Last(string key) => records.LastOrDefault(r => r.Key == key).Value;
        var major = Last("GNU.sparse.major");
        var minor = Last("GNU.sparse.minor");
        var size = Last("GNU.sparse.size") ?? Last("GNU.sparse.realsize");
        if (major is null && size is null)
        {
            return null;
        }

        var probe = new TarSparseMap(0, invalid);
        if (major is not null)
        {
            if (major != "1" || minor != "0")
            {
                throw invalid($"sparse format {major}.{minor} is not one GNU tar writes (0.0, 0.1, 1.0)");
            }

            inData = true;
            return new TarSparseMap(probe.Number(Last("GNU.sparse.realsize") ?? throw invalid("no GNU.sparse.realsize"), "real size"), invalid);
        }

        var map = new TarSparseMap(probe.Number(size!, "real size"), invalid);
        var blocks = probe.Number(Last("GNU.sparse.numblocks") ?? throw invalid("no GNU.sparse.numblocks"), "block count");
        if (Last("GNU.sparse.map") is { } list)
        {
            // 0.1: "offset,size,offset,size,…"
            var parts = list.Length == 0 ? [] : list.Split(',');
            if (parts.Length != blocks * 2)
            {
                throw invalid($"GNU.sparse.map has {parts.Length} numbers for {blocks} ranges");
            }

            for (var i = 0; i < parts.Length; i += 2)
            {
                map.Add(map.Number(parts[i], "offset"), map.Number(parts[i + 1], "size"));
            }

            return map;
        }

        // 0.0: repeated GNU.sparse.offset / GNU.sparse.numbytes records, in order.
        long? pending = null;
        foreach (var (key, value) in records)
        {
            if (key == "GNU.sparse.offset")
            {
                if (pending is not null)
                {
                    throw invalid("two offsets without a size between them");
                }

                pending = map.Number(value, "offset");
            }
            else if (key == "GNU.sparse.numbytes")
            {
                map.Add(pending ?? throw invalid("a size without an offset"), map.Number(value, "size"));
                pending = null;
            }
        }

        if (pending is not null || map.Count != blocks)
        {
            throw invalid($"the header lists {map.Count} ranges but declares {blocks}");
        }

        return map;
    }
}
