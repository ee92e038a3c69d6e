using System.Globalization;
using System.Text;

namespace Forkd.Core.Hub;

/// <summary>
/// A small, strict tar reader. It hands out headers before any data is read, so the caller can refuse
/// an entry (a link, a device, a name with <c>..</c>, a size beyond what the manifest allows) without
/// writing a byte; it never seeks and never reads past the entry it was told about.
/// </summary>
public sealed class TarReader
{
    private const int MaxMetaEntryBytes = 64 * 1024;
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
        Dictionary<string, string>? pax = null;
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
                    pax = ParsePax(ReadMetaText(size));
                    continue;
                case 'g':
                    _ = ReadMetaText(size); // global PAX defaults: nothing in them matters to a pack
                    continue;
            }

            var name = longName ?? HeaderName();
            var link = longLink ?? CString(_block.AsSpan(157, 100));
            if (pax is not null)
            {
                if (pax.TryGetValue("path", out var p))
                {
                    name = p;
                }

                if (pax.TryGetValue("linkpath", out var lp))
                {
                    link = lp;
                }

                if (pax.TryGetValue("size", out var ps))
                {
                    size = long.TryParse(ps, NumberStyles.None, CultureInfo.InvariantCulture, out var v)
                        ? v
                        : throw Corrupt($"PAX size '{ps}' is not a number");
                }
            }

            _remaining = size;
            _padding = TarHeaderWriter.Padding(size);
            var type = Classify(flag);
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

    private string ReadMetaText(long size)
    {
        if (size > MaxMetaEntryBytes)
        {
            throw Corrupt($"a tar metadata record of {size} bytes is larger than any pack needs");
        }

        var data = new byte[size];
        ReadExactly(data);
        var pad = TarHeaderWriter.Padding(size);
        ReadExactly(_block.AsSpan(0, pad));
        return Encoding.UTF8.GetString(data);
    }

    private Dictionary<string, string> ParsePax(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var pos = 0;
        while (pos < text.Length)
        {
            var space = text.IndexOf(' ', pos);
            if (space < 0 || !int.TryParse(text.AsSpan(pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out var len) ||
                len <= space - pos || pos + len > text.Length)
            {
                throw Corrupt("malformed PAX header");
            }

            var record = text.Substring(space + 1, pos + len - space - 2); // without the trailing newline
            var eq = record.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result[record[..eq]] = record[(eq + 1)..];
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

    private ForkdException Corrupt(string detail) =>
        new("PackCorrupt", ForkdErrorKind.InvalidData, $"pack {_source} is damaged: {detail}", _source)
        {
            Hint = "Fetch the pack again; if it keeps failing, ask the publisher to re-export it.",
        };
}
