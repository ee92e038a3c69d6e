using System.Globalization;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>The guest-RAM mapping inside a QEMU process: <c>[Start, Start+Length)</c> of its virtual address space.</summary>
internal sealed record GuestRamMapping(long Start, long Length)
{
    public long Pages => Length / MemoryDiff.PageSize;
}

/// <summary>
/// Reads a paused child's guest RAM from the host side. A child maps its snapshot's memory file private
/// (copy-on-write), so the pages it wrote are exactly those of the mapping no longer backed by the file:
/// <c>/proc/&lt;pid&gt;/pagemap</c> shows them present (bit 63) and not file-backed (bit 61 clear), or swapped (bit 62).
/// Full reads all of RAM with <c>pread</c> on <c>/proc/&lt;pid&gt;/mem</c>; Diff's prepared copy is <see cref="WrittenPageCopy"/>.
/// </summary>
internal static class GuestRam
{
    private const int Page = MemoryDiff.PageSize;

    /// <summary>Finds the mapping of <paramref name="memoryFile"/> (matched by device and inode, so symlinked paths agree).</summary>
    public static GuestRamMapping Find(int pid, string memoryFile)
    {
        var inode = NativeFile.Inode(memoryFile);
        foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/maps"))
        {
            // start-end perms offset dev inode path
            var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 6 || !long.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var ino) || ino != inode
                || fields[2] != "00000000" || !fields[1].StartsWith("rw", StringComparison.Ordinal))
            {
                continue;
            }

            var range = fields[0].Split('-');
            var start = long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var end = long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return new GuestRamMapping(start, end - start);
        }

        throw new ForkdException("CheckpointFailed", ForkdErrorKind.Failed,
            $"process {pid} has no mapping of its memory file {memoryFile}", memoryFile)
        { Hint = "The child's VMM is not the one the registry recorded; Get-ForkdChild shows its state." };
    }

    /// <summary>pagemap bits: 63 present, 62 swapped, 61 file-page or shared-anon.</summary>
    internal static bool IsWritten(ulong entry)
    {
        var present = (entry >> 63) & 1;
        var swapped = (entry >> 62) & 1;
        var filePage = (entry >> 61) & 1;
        return swapped == 1 || (present == 1 && filePage == 0);
    }

    /// <summary>Writes all of guest RAM to <paramref name="destination"/>; zero pages stay holes. Returns the bytes written.</summary>
    public static long CopyAll(int pid, GuestRamMapping mapping, string destination, CancellationToken cancellationToken)
    {
        using var mem = File.OpenHandle($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/mem");
        using var output = File.OpenHandle(destination, FileMode.CreateNew, FileAccess.Write);
        RandomAccess.SetLength(output, mapping.Length);
        var buffer = new byte[1 << 20];
        long written = 0;
        for (long offset = 0; offset < mapping.Length; offset += buffer.Length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var n = (int)Math.Min(buffer.Length, mapping.Length - offset);
            ReadFully(mem, buffer.AsSpan(0, n), mapping.Start + offset);
            written += SparseCopy.WriteNonZeroPages(output, buffer.AsSpan(0, n), offset);
        }

        return written;
    }

    internal static void ReadFully(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        while (buffer.Length > 0)
        {
            var n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0)
            {
                throw new ForkdException("CheckpointFailed", ForkdErrorKind.Failed, $"short read of guest RAM at 0x{offset:x}", offset);
            }

            buffer = buffer[n..];
            offset += n;
        }
    }
}
