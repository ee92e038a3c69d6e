namespace Forkd.Core.Store;

/// <summary>Copies memory images without filling their holes: a reflink where the file system can, else a copy that skips zero pages.</summary>
public static class SparseCopy
{
    private const int Page = MemoryDiff.PageSize;

    public static void Copy(string source, string destination, CancellationToken cancellationToken)
    {
        if (Host.FileClone.TryReflink(source, destination))
        {
            return;
        }

        using var from = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        using var to = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
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
