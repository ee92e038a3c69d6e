using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Forkd.Core.Hub;

/// <summary>Tar entry types, collapsed to what a pack reader must tell apart.</summary>
public enum TarEntryType
{
    Regular,
    Directory,
    SymbolicLink,
    HardLink,
    CharacterDevice,
    BlockDevice,
    Fifo,
    Sparse,
    Other,
}

/// <summary>
/// One tar header, after GNU long-name and PAX records were applied. For a GNU sparse entry (old GNU type
/// <c>S</c>, or PAX 0.0/0.1/1.0) <see cref="Size"/> is the real size, <see cref="Sparse"/> says which ranges are
/// stored, and the entry's data (what <see cref="TarReader.Read"/> returns) is those ranges back to back.
/// </summary>
public sealed record TarEntryHeader(string Name, TarEntryType Type, char TypeFlag, long Size, string? LinkName, TarSparseMap? Sparse = null);

/// <summary>Writes the 512-byte GNU tar headers forkd's packs use (the Rust <c>tar</c> crate's <c>Header::new_gnu</c>).</summary>
public static class TarHeaderWriter
{
    public const int BlockSize = 512;

    public static byte[] Regular(string name, long size, int mode, DateTimeOffset mtime)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        if (nameBytes.Length > 100)
        {
            throw new ArgumentException("tar entry name longer than 100 bytes", nameof(name));
        }

        var h = new byte[BlockSize];
        nameBytes.CopyTo(h, 0);
        Octal(h.AsSpan(100, 8), mode & 0xFFF);
        Octal(h.AsSpan(108, 8), 0); // uid
        Octal(h.AsSpan(116, 8), 0); // gid
        Number(h.AsSpan(124, 12), size);
        Number(h.AsSpan(136, 12), Math.Max(0, mtime.ToUnixTimeSeconds()));
        h[156] = (byte)'0';
        "ustar  \0"u8.CopyTo(h.AsSpan(257)); // GNU magic + version
        "root"u8.CopyTo(h.AsSpan(265));
        "root"u8.CopyTo(h.AsSpan(297));
        h.AsSpan(148, 8).Fill((byte)' ');
        var sum = 0;
        foreach (var b in h)
        {
            sum += b;
        }

        var chk = Convert.ToString(sum, 8).PadLeft(6, '0');
        Encoding.ASCII.GetBytes(chk).CopyTo(h, 148);
        h[154] = 0;
        h[155] = (byte)' ';
        return h;
    }

    /// <summary>Bytes of zero padding after <paramref name="size"/> bytes of entry data.</summary>
    public static int Padding(long size) => (int)((BlockSize - (size % BlockSize)) % BlockSize);

    private static void Octal(Span<byte> field, long value)
    {
        var digits = Convert.ToString(value, 8).PadLeft(field.Length - 1, '0');
        Encoding.ASCII.GetBytes(digits).CopyTo(field);
        field[^1] = 0;
    }

    // Octal while it fits (8 GiB for sizes), else GNU base-256 (high bit set, big-endian).
    private static void Number(Span<byte> field, long value)
    {
        if (value < (1L << (3 * (field.Length - 1))))
        {
            Octal(field, value);
            return;
        }

        field.Clear();
        BinaryPrimitives.WriteInt64BigEndian(field[^8..], value);
        field[0] |= 0x80;
    }
}

