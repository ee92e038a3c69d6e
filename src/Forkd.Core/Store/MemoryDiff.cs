using System.Buffers.Binary;

namespace Forkd.Core.Store;

/// <summary>A run of consecutive guest pages and their bytes, as captured from a paused VM (a slice of a larger buffer, often).</summary>
public sealed record DiffRun(long FirstPage, ReadOnlyMemory<byte> Data)
{
    public long PageCount => Data.Length / MemoryDiff.PageSize;
}

/// <summary>
/// <c>memory.diff</c>: the pages a child wrote since it was forked, over its parent's memory image. Layout (little
/// endian): magic <c>FKDDIFF1</c>, page size (u32), reserved (u32), image size in bytes (u64), run count (u64), then
/// each run's first page and page count (u64, u64), then the runs' bytes in the same order. Only the index and the
/// written pages are stored; applying it to a copy of the parent's image gives the child's memory at capture time.
/// </summary>
public static class MemoryDiff
{
    public const int PageSize = 4096;
    public const string FileName = "memory.diff";
    private static ReadOnlySpan<byte> Magic => "FKDDIFF1"u8;
    private const int HeaderSize = 32;

    /// <summary>Writes the diff (to a temp name, renamed when complete). Returns the bytes written.</summary>
    public static long Write(string path, long imageSize, IReadOnlyList<DiffRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var temp = path + ".partial";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            var header = new byte[HeaderSize];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), PageSize);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), imageSize);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(24), runs.Count);
            file.Write(header);
            var entry = new byte[16];
            foreach (var run in runs)
            {
                BinaryPrimitives.WriteInt64LittleEndian(entry, run.FirstPage);
                BinaryPrimitives.WriteInt64LittleEndian(entry.AsSpan(8), run.PageCount);
                file.Write(entry);
            }

            foreach (var run in runs)
            {
                file.Write(run.Data.Span);
            }

            file.Flush(flushToDisk: false);
        }

        File.Move(temp, path, overwrite: true);
        return new FileInfo(path).Length;
    }

    /// <summary>The image size and the runs (first page, page count) of a diff file; refuses a damaged one.</summary>
    public static (long ImageSize, IReadOnlyList<(long FirstPage, long PageCount)> Runs) ReadIndex(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadIndex(file, path);
    }

    private static (long, IReadOnlyList<(long, long)>) ReadIndex(FileStream file, string path)
    {
        var header = new byte[HeaderSize];
        file.ReadExactly(header);
        if (!header.AsSpan(0, 8).SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)) != PageSize)
        {
            throw Damaged(path, "not a Forkd memory diff");
        }

        var imageSize = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16));
        var count = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(24));
        var imagePages = imageSize / PageSize;
        if (imageSize <= 0 || imageSize % PageSize != 0 || count < 0 || count > imagePages || HeaderSize + (count * 16) > file.Length)
        {
            throw Damaged(path, "its header is out of range");
        }

        var runs = new List<(long, long)>((int)count);
        var entry = new byte[16];
        long dataBytes = 0, nextFree = 0;
        for (var i = 0; i < count; i++)
        {
            file.ReadExactly(entry);
            var first = BinaryPrimitives.ReadInt64LittleEndian(entry);
            var pages = BinaryPrimitives.ReadInt64LittleEndian(entry.AsSpan(8));
            // Runs are sorted, disjoint and inside the image: anything else is damage, never applied.
            if (first < nextFree || pages <= 0 || first + pages > imagePages)
            {
                throw Damaged(path, $"run {i} is out of range");
            }

            nextFree = first + pages;
            dataBytes += pages * PageSize;
            runs.Add((first, pages));
        }

        if (file.Length != HeaderSize + (count * 16) + dataBytes)
        {
            throw Damaged(path, "its length does not match its index");
        }

        return (imageSize, runs);
    }

    /// <summary>Writes the diff's pages into <paramref name="imagePath"/> (a copy of the parent's image, the same size).</summary>
    public static void ApplyTo(string diffPath, string imagePath, CancellationToken cancellationToken)
    {
        using var diff = new FileStream(diffPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var (imageSize, runs) = ReadIndex(diff, diffPath);
        using var image = new FileStream(imagePath, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
        if (image.Length != imageSize)
        {
            throw new ForkdException("SnapshotChainBroken", ForkdErrorKind.InvalidData,
                $"the diff {diffPath} is for a {imageSize}-byte memory image, but its parent's is {image.Length} bytes", diffPath)
            { Hint = "The parent snapshot was replaced by one of another size; re-create the diff snapshot from a child of it." };
        }

        var buffer = new byte[1 << 20];
        foreach (var (first, pages) in runs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var remaining = pages * PageSize;
            var offset = first * PageSize;
            while (remaining > 0)
            {
                var n = (int)Math.Min(buffer.Length, remaining);
                diff.ReadExactly(buffer, 0, n);
                RandomAccess.Write(image.SafeFileHandle, buffer.AsSpan(0, n), offset);
                offset += n;
                remaining -= n;
            }
        }
    }

    private static ForkdException Damaged(string path, string why) =>
        new("SnapshotDiffInvalid", ForkdErrorKind.InvalidData, $"the memory diff {path} is damaged: {why}", path)
        { Hint = "Remove the snapshot (Remove-ForkdSnapshot) and checkpoint its source again." };
}

/// <summary>The allocated extents of a sparse file (SEEK_DATA / SEEK_HOLE), as Firecracker's Diff snapshots write them.</summary>
public static class SparseExtents
{
    private const int SeekData = 3;
    private const int SeekHole = 4;

    /// <summary>The file's data as page runs: each allocated extent, widened to whole pages, with its bytes.</summary>
    public static List<DiffRun> ReadRuns(string path, CancellationToken cancellationToken)
    {
        using var file = File.OpenHandle(path);
        var length = RandomAccess.GetLength(file);
        var fd = (int)file.DangerousGetHandle();
        var runs = new List<DiffRun>();
        long offset = 0;
        while (offset < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var data = Tmds.Linux.LibC.lseek(fd, offset, SeekData);
            if (data < 0)
            {
                break; // ENXIO: no data after offset
            }

            var hole = Math.Min((long)Tmds.Linux.LibC.lseek(fd, data, SeekHole), length);
            var first = data / MemoryDiff.PageSize;
            var end = (hole + MemoryDiff.PageSize - 1) / MemoryDiff.PageSize;
            var bytes = new byte[(end - first) * MemoryDiff.PageSize];
            RandomAccess.Read(file, bytes, first * MemoryDiff.PageSize);
            runs.Add(new DiffRun(first, bytes));
            offset = end * MemoryDiff.PageSize;
        }

        return runs;
    }
}
