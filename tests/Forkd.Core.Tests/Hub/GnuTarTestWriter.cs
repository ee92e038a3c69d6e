using System.Text;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// An independent tar writer for tests, written from GNU tar's format description ("Basic Tar Format" and
/// "Old GNU Format" in the GNU tar manual), not from our reader: regular files, and old GNU sparse members
/// (type 'S', four map slots in the header, 21 per extension block, realsize at 483). Every map value is
/// written as given, so a test can craft an overlapping, unsorted or oversized map.
/// </summary>
public sealed class GnuTarTestWriter(Stream output)
{
    private const int Block = 512;

    public void AddFile(string name, byte[] data)
    {
        var header = Header(name, data.Length, '0');
        Finish(header);
        output.Write(header);
        WritePadded(data);
    }

    /// <summary>
    /// A sparse member: <paramref name="map"/> lists (offset, length) ranges taken from <paramref name="content"/>
    /// (the whole file, holes included); only those bytes are stored. <paramref name="storedOverride"/> and
    /// <paramref name="omitData"/> make damaged members.
    /// </summary>
    public void AddSparse(string name, byte[] content, IReadOnlyList<(long Offset, long Length)> map, long? realSize = null,
        long? storedOverride = null, bool omitData = false)
    {
        var stored = map.Sum(m => m.Length);
        var header = Header(name, storedOverride ?? stored, 'S');
        Octal(header, 483, 12, realSize ?? content.Length);
        var slots = map.Take(4).ToList();
        for (var i = 0; i < slots.Count; i++)
        {
            Octal(header, 386 + (24 * i), 12, slots[i].Offset);
            Octal(header, 386 + (24 * i) + 12, 12, slots[i].Length);
        }

        header[482] = (byte)(map.Count > 4 ? 1 : 0);
        Finish(header);
        output.Write(header);
        for (var first = 4; first < map.Count; first += 21)
        {
            var ext = new byte[Block];
            var chunk = map.Skip(first).Take(21).ToList();
            for (var i = 0; i < chunk.Count; i++)
            {
                Octal(ext, 24 * i, 12, chunk[i].Offset);
                Octal(ext, (24 * i) + 12, 12, chunk[i].Length);
            }

            ext[504] = (byte)(first + 21 < map.Count ? 1 : 0);
            output.Write(ext);
        }

        if (omitData)
        {
            return;
        }

        var data = new MemoryStream();
        foreach (var (offset, length) in map)
        {
            data.Write(content, (int)offset, (int)Math.Min(length, Math.Max(0, content.Length - offset)));
        }

        WritePadded(data.ToArray());
    }

    /// <summary>The end-of-archive marker: two zero blocks.</summary>
    public void End() => output.Write(new byte[2 * Block]);

    private void WritePadded(byte[] data)
    {
        output.Write(data);
        output.Write(new byte[(Block - (data.Length % Block)) % Block]);
    }

    private static byte[] Header(string name, long size, char type)
    {
        var h = new byte[Block];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Octal(h, 100, 8, 0x1A4); // 0644
        Octal(h, 108, 8, 0);
        Octal(h, 116, 8, 0);
        Octal(h, 124, 12, size);
        Octal(h, 136, 12, 1700000000);
        h[156] = (byte)type;
        "ustar  \0"u8.CopyTo(h.AsSpan(257)); // GNU magic + version
        return h;
    }

    private static void Finish(byte[] h)
    {
        h.AsSpan(148, 8).Fill((byte)' ');
        var sum = h.Sum(b => (long)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(h, 148);
    }

    private static void Octal(byte[] h, int at, int width, long value)
    {
        var digits = Convert.ToString(value, 8).PadLeft(width - 1, '0');
        Encoding.ASCII.GetBytes(digits).CopyTo(h, at);
        h[at + width - 1] = 0;
    }
}
