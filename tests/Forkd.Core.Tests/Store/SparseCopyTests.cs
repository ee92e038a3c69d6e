using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>Memory images are copied byte for byte and stay sparse, by the kernel copy and by the buffered one.</summary>
[Collection(nameof(SparseCopyTests))] // UseKernelCopy is process-wide
public sealed class SparseCopyTests : IDisposable
{
    private const int Page = MemoryDiff.PageSize;
    private const long Length = 64L << 20;
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_sparse_image_is_copied_byte_for_byte_and_stays_sparse(bool kernelCopy)
    {
        var source = Path.Combine(_dir.Path, "memory.bin");
        using (var f = new FileStream(source, FileMode.CreateNew, FileAccess.Write))
        {
            f.SetLength(Length);
            // A hole first, runs of data, a zero page between data pages, data at the very end.
            foreach (var (page, count) in new[] { (10L, 3), (1000L, 1), (1002L, 1), (8000L, 200), ((Length / Page) - 1, 1) })
            {
                for (var i = 0; i < count; i++)
                {
                    f.Position = (page + i) * Page;
                    f.Write(Enumerable.Repeat((byte)((page + i) % 251 + 1), Page).ToArray());
                }
            }
        }

        var copy = Path.Combine(_dir.Path, "copy.bin");
        SparseCopy.UseKernelCopy = kernelCopy;
        try
        {
            SparseCopy.Copy(source, copy, CancellationToken.None);
        }
        finally
        {
            SparseCopy.UseKernelCopy = true;
        }

        Assert.Equal(Length, new FileInfo(copy).Length);
        Assert.True(File.ReadAllBytes(source).AsSpan().SequenceEqual(File.ReadAllBytes(copy)), "the copy differs from the source");
        Assert.True(AllocatedBytes(copy) < 8L << 20, $"the copy of a 64 MiB image holding 206 pages allocated {AllocatedBytes(copy)} bytes");
    }

    private static long AllocatedBytes(string path)
    {
        var output = Forkd.Core.Host.HostCommand.Run("stat", ["-c", "%b %B", path]);
        var parts = output.Trim().Split(' ');
        return long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) * long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
    }
}
