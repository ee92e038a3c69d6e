using System.Globalization;
using System.Text;

namespace Forkd.Core.Hub;

/// <summary>
/// A small, strict tar reader. It hands out headers before any data is read, so the caller can refuse
/// an entry (a link, a device, a name with <c>..</c>, a size beyond what the manifest allows) without
/// writing a byte; it never seeks and never reads past the entry it was told about.
/// </summary>
public sealed partial class TarReader
{
    private const int MaxMetaEntryBytes = 64 * 1024;

    /// <summary>PAX sparse maps (0.0/0.1) live in the extended header: about 50 bytes a range.</summary>
    private const int MaxPaxBytes = 64 * 1024 * 1024;
    private readonly Stream _stream;
    private readonly string _source;
    private readonly byte[] _block = new byte[TarHeaderWriter.BlockSize];
    private long _remaining;
    private int _padding;

    public TarReader(Stream stream, string source)
    {
        _stream = stream;
        _source = source;
    }

    /// <summary>Bytes of the current entry's data not read yet.</summary>
    public long Remaining => _remaining;

    /// <summary>The next entry, or null at the end-of-archive marker. Unread data of the previous entry is skipped.</summary>
    public TarEntryHeader? Next()
    {
        SkipRest();
        string? longName = null;
        string? longLink = null;
        List<KeyValuePair<string, string>>? pax = null;
        while (true)
        {
            if (!ReadBlock(allowEof: true))
            {
                throw Truncated("the archive ends without an end-of-archive marker");
            }

            if (_block.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                return null;
            }

            VerifyChecksum();
            var flag = (char)_block[156];
            var size = ParseNumber(_block.AsSpan(124, 12), "size");
            switch (flag)
            {
                case 'L':
                    longName = ReadMetaText(size).TrimEnd('\0');
                    continue;
                case 'K':
                    longLink = ReadMetaText(size).TrimEnd('\0');
                    continue;
                case 'x':
                    pax = ParsePax(ReadMetaText(size, MaxPaxBytes));
                    continue;
                case 'g':
                    _ = ReadMetaText(size); // global PAX defaults: nothing in them matters to a pack
                    continue;
            }

            var name = longName ?? HeaderName();
            var link = longLink ?? CString(_block.AsSpan(157, 100));
            TarSparseMap? sparse = null;
            var mapInData = false;
            if (flag == 'S')
            {
                sparse = ReadOldGnuSparseMap();
            }

            if (pax is not null)
            {
                string? Last(string key) => pax.LastOrDefault(r => r.Key == key).Value;
                sparse ??= TarSparseMap.FromPax(pax, SparseInvalid, out mapInData);
                name = (sparse is not null ? Last("GNU.sparse.name") : null) ?? Last("path") ?? name;
                if (Last("linkpath") is { } lp)
                {
                    link = lp;
                }

                if (Last("size") is { } ps)
                {
                    size = long.TryParse(ps, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
                        ? v
                        : throw Corrupt($"PAX size '{ps}' is not a number");
                }
            }

            _remaining = size;
            _padding = TarHeaderWriter.Padding(size);
            var type = Classify(flag);
            if (sparse is not null)
            {
                if (type is not (TarEntryType.Regular or TarEntryType.Sparse))
                {
                    throw SparseInvalid($"a sparse map on an entry of type '{flag}'");
                }

                if (mapInData)
                {
                    ReadSparseMapFromData(sparse); // PAX 1.0: the map precedes the data, in whole blocks
                }

                sparse.RequireStored(_remaining);
                return new TarEntryHeader(name, TarEntryType.Regular, flag, sparse.RealSize, null, sparse);
            }

            return new TarEntryHeader(name, type, flag, size, string.IsNullOrEmpty(link) ? null : link);
        }
    }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes of the current entry; 0 at its end.</summary>
    public int Read(Span<byte> buffer)
    {
        if (_remaining == 0)
        {
            return 0;
        }

        var want = (int)Math.Min(buffer.Length, _remaining);
        var total = 0;
        while (total < want)
        {
            var n = _stream.Read(buffer[total..want]);
            if (n == 0)
            {
                throw Truncated("an entry's data stops early");
            }

            total += n;
        }

        _remaining -= total;
        return total;
    }

    private void SkipRest()
    {
        var scratch = new byte[64 * 1024];
        while (_remaining > 0)
        {
            Read(scratch);
        }

        if (_padding > 0)
        {
            ReadExactly(_block.AsSpan(0, _padding));
            _padding = 0;
        }
    }

    private string ReadMetaText(long size, int limit = MaxMetaEntryBytes)
    {
        if (size > limit)
        {
            throw Corrupt($"a tar metadata record of {size} bytes is larger than any pack needs");
        }

        var data = new byte[size];
        ReadExactly(data);
        var pad = TarHeaderWriter.Padding(size);
        ReadExactly(_block.AsSpan(0, pad));
        return Encoding.UTF8.GetString(data);
    }

    /// <summary>PAX records in order (GNU sparse 0.0 repeats keys; for the others the last one counts).</summary>
    private List<KeyValuePair<string, string>> ParsePax(string text)
    {
        var result = new List<KeyValuePair<string, string>>();
        var pos = 0;
        while (pos < text.Length)
        {
            var space = text.IndexOf(' ', pos);
            if (space < 0 || !int.TryParse(text.AsSpan(pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out var len) ||
                len <= space - pos + 1 || pos + len > text.Length || text[pos + len - 1] != '\n')
            {
                throw Corrupt("malformed PAX header");
            }

            var record = text.Substring(space + 1, pos + len - space - 2); // without the trailing newline
            var eq = record.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result.Add(new(record[..eq], record[(eq + 1)..]));
            }

            pos += len;
        }

        return result;
    }

    private string HeaderName()
    {
        var name = CString(_block.AsSpan(0, 100));
        // POSIX ustar ("ustar\0") splits long names into prefix + name; GNU headers use that space otherwise.
        if (_block.AsSpan(257, 6).SequenceEqual("ustar\0"u8))
        {
            var prefix = CString(_block.AsSpan(345, 155));
            if (prefix.Length > 0)
            {
                name = prefix + "/" + name;
            }
        }

        return name;
    }

    private static TarEntryType Classify(char flag) => flag switch
    {
        '0' or '\0' or '7' => TarEntryType.Regular,
        '1' => TarEntryType.HardLink,
        '2' => TarEntryType.SymbolicLink,
        '3' => TarEntryType.CharacterDevice,
        '4' => TarEntryType.BlockDevice,
        '5' => TarEntryType.Directory,
        '6' => TarEntryType.Fifo,
        'S' => TarEntryType.Sparse,
        _ => TarEntryType.Other,
    };

    private void VerifyChecksum()
    {
        var stored = ParseNumber(_block.AsSpan(148, 8), "checksum");
        long unsignedSum = 0, signedSum = 0;
        for (var i = 0; i < _block.Length; i++)
        {
            var b = i is >= 148 and < 156 ? (byte)' ' : _block[i];
            unsignedSum += b;
            signedSum += (sbyte)b;
        }

        if (stored != unsignedSum && stored != signedSum)
        {
            throw Corrupt("a tar header has a bad checksum (this is not a tar archive, or it is damaged)");
        }
    }

    private long ParseNumber(ReadOnlySpan<byte> field, string what)
    {
        if ((field[0] & 0x80) != 0)
        {
            if ((field[0] & 0x40) != 0)
            {
                throw Corrupt($"negative {what} in a tar header");
            }

            long v = field[0] & 0x3F;
            foreach (var b in field[1..])
            {
                if (v > (long.MaxValue >> 8))
                {
                    throw Corrupt($"{what} in a tar header is out of range");
                }

                v = (v << 8) | b;
            }

            return v;
        }

        long value = 0;
        var seen = false;
        foreach (var b in field)
        {
            if (b is (byte)' ' or 0)
            {
                if (seen)
                {
                    break;
                }

                continue;
            }

            if (b is < (byte)'0' or > (byte)'7' || value > (long.MaxValue >> 3))
            {
                throw Corrupt($"{what} in a tar header is not an octal number");
            }

            value = (value << 3) + (b - '0');
            seen = true;
        }

        return value;
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        var nul = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? field : field[..nul]);
    }

    private bool ReadBlock(bool allowEof)
    {
        var total = 0;
        while (total < _block.Length)
        {
            var n = _stream.Read(_block, total, _block.Length - total);
            if (n == 0)
            {
                if (total == 0 && allowEof)
                {
                    return false;
                }

                throw Truncated("a tar header is cut short");
            }

            total += n;
        }

        return true;
    }

    private void ReadExactly(Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = _stream.Read(buffer[total..]);
            if (n == 0)
            {
                throw Truncated("the archive stops inside an entry");
            }

            total += n;
        }
    }

    private ForkdException Truncated(string detail) =>
        new("PackTruncated", ForkdErrorKind.InvalidData, $"pack {_source} is truncated: {detail}", _source)
        {
            Hint = "The download or copy was probably cut short; fetch the pack again.",
        };

    private ForkdException SparseInvalid(string detail) =>
        new("PackSparseMapInvalid", ForkdErrorKind.InvalidData, $"pack {_source} has an unsafe sparse entry: {detail}", _source)
        {
            Hint = "Only import packs from sources you trust; a sparse map must list sorted, non-overlapping ranges inside the file.",
        };

    private ForkdException Corrupt(string detail) =>
        new("PackCorrupt", ForkdErrorKind.InvalidData, $"pack {_source} is damaged: {detail}", _source)
        {
            Hint = "Fetch the pack again; if it keeps failing, ask the publisher to re-export it.",
        };
}
