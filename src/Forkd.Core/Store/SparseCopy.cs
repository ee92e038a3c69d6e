using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Store;

/// <summary>Copies memory images without filling their holes.</summary>
public static partial class SparseCopy
{
    private const int Page = MemoryDiff.PageSize;
    private const int SeekData = 3, SeekHole = 4;

    /// <summary>Tests turn the kernel copy off to check the buffered one.</summary>
    internal static bool UseKernelCopy { get; set; } = true;

    /// <summary>
    /// Copies a memory image, keeping it sparse: a reflink where the filesystem has them; else the data extents
    /// (SEEK_DATA/SEEK_HOLE) copied in the kernel with copy_file_range (a third faster than through a buffer); else
    /// through a buffer, skipping zero pages.
    /// </summary>
    public static void Copy(string source, string destination, CancellationToken cancellationToken)
    {
        if (Host.FileClone.TryReflink(source, destination))
        {
            return;
        }

        using var from = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        using var to = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
        to.SetLength(from.Length);
        if (UseKernelCopy && TryCopyDataExtents(from.SafeFileHandle, to.SafeFileHandle, from.Length, cancellationToken))
        {
            return;
        }

        to.SetLength(0); // whatever the kernel copy got through is dropped, then copied again
        to.SetLength(from.Length);
        var buffer = new byte[1 << 20];
        long offset = 0;
        int n;
        while ((n = RandomAccess.Read(from.SafeFileHandle, buffer, offset)) > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            WriteNonZeroPages(to.SafeFileHandle, buffer.AsSpan(0, n), offset);
            offset += n;
        }
    }

    /// <summary>False when the kernel or filesystem refuses (no SEEK_DATA, no copy_file_range, another device): the caller copies instead.</summary>
    private static bool TryCopyDataExtents(SafeFileHandle from, SafeFileHandle to, long length, CancellationToken cancellationToken)
    {
        int input = (int)from.DangerousGetHandle(), output = (int)to.DangerousGetHandle();
        long position = 0;
        while (position < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = lseek(input, position, SeekData);
            if (data < 0)
            {
                return Marshal.GetLastPInvokeError() == 6; // ENXIO: no data after here, the rest is a hole
            }

            var hole = lseek(input, data, SeekHole);
            if (hole < 0)
            {
                return false;
            }

            long inOffset = data, outOffset = data;
            while (inOffset < hole)
            {
                var copied = copy_file_range(input, ref inOffset, output, ref outOffset, (nuint)Math.Min(hole - inOffset, 1L << 30), 0);
                if (copied <= 0)
                {
                    return false;
                }
            }

            position = hole;
        }

        return true;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint copy_file_range(int fdIn, ref long offIn, int fdOut, ref long offOut, nuint length, uint flags);

    /// <summary>Writes the pages of <paramref name="data"/> that are not all zero at <paramref name="offset"/>; zero pages stay holes.</summary>
    public static long WriteNonZeroPages(Microsoft.Win32.SafeHandles.SafeFileHandle file, ReadOnlySpan<byte> data, long offset)
    {
        long written = 0;
        var start = -1;
        for (var p = 0; p < data.Length; p += Page)
        {
            var page = data.Slice(p, Math.Min(Page, data.Length - p));
            var zero = !page.ContainsAnyExcept((byte)0);
            if (!zero && start < 0)
            {
                start = p;
            }
            else if (zero && start >= 0)
            {
                RandomAccess.Write(file, data[start..p], offset + start);
                written += p - start;
                start = -1;
            }
        }

        if (start >= 0)
        {
            RandomAccess.Write(file, data[start..], offset + start);
            written += data.Length - start;
        }

        return written;
    }
}
