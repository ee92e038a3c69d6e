using System.Diagnostics;
using Forkd.Core.Store;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Vmm.Qemu;

/// <summary>
/// The Diff capture against a real process: python3 maps a file private (as QEMU maps a child's memory.bin), writes
/// some pages, and waits; the capture must find exactly those pages, with their bytes, by PAGEMAP_SCAN and by the
/// pread scan alike.
/// </summary>
[Collection(nameof(WrittenPageCopyTests))] // UsePagemapScan is process-wide
public sealed class WrittenPageCopyTests : IDisposable
{
    private const int Page = MemoryDiff.PageSize;
    private const int Pages = 4096; // 16 MiB
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Pages written: a run of 2000 (7.8 MiB: three pieces), single scattered ones and the last page.</summary>
    private static readonly long[] Written = [.. Enumerable.Range(100, 2000).Select(i => (long)i), 7, 2500, 2502, 3001, Pages - 1];

    private static byte Fill(long page) => (byte)((page % 250) + 1);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_capture_finds_exactly_the_written_pages_with_their_bytes(bool pagemapScan)
    {
        var image = Path.Combine(_dir.Path, "memory.bin");
        using (var f = File.Create(image))
        {
            f.SetLength((long)Pages * Page);
            f.Write(Enumerable.Repeat((byte)0xEE, Page).ToArray()); // a file page that is read, not written: never captured
        }

        var script = $$"""
            import mmap, os, sys
            f = open('{{image}}', 'r+b')
            m = mmap.mmap(f.fileno(), {{(long)Pages * Page}}, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            s = 0
            for p in range(0, {{Pages}}, 64): s += m[p * {{Page}}]
            for p in [{{string.Join(",", Written)}}]: m[p * {{Page}}:(p + 1) * {{Page}}] = bytes([(p % 250) + 1]) * {{Page}}
            print('ready', flush=True)
            sys.stdin.readline()
            """;
        using var python = Process.Start(new ProcessStartInfo("python3", ["-c", script]) { RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("ready", python.StandardOutput.ReadLine());
            WrittenPageCopy.UsePagemapScan = pagemapScan;
            var mapping = GuestRam.Find(python.Id, image);
            Assert.Equal((long)Pages * Page, mapping.Length);
            using var copy = WrittenPageCopy.Prepare(python.Id, mapping);
            copy.Begin(CancellationToken.None);
            copy.Capture();
            var runs = copy.Runs();
            // 7.8 MiB written: three pieces (cut inside the long run), taken by the two threads.
            Assert.Equal(Environment.ProcessorCount >= 2 ? 3 : 1, copy.WorkerTimes.Sum(w => w.Pieces));
            Assert.Equal(pagemapScan, WrittenPageCopy.UsePagemapScan); // the kernel here (6.7+) has PAGEMAP_SCAN: no silent fallback

            var pages = runs.SelectMany(r => Enumerable.Range(0, (int)r.PageCount).Select(i => r.FirstPage + i)).ToList();
            Assert.Equal(Written.Order(), pages);
            foreach (var run in runs)
            {
                for (var i = 0; i < run.PageCount; i++)
                {
                    var bytes = run.Data.Span.Slice(i * Page, Page);
                    Assert.True(bytes.IndexOfAnyExcept(Fill(run.FirstPage + i)) < 0, $"page {run.FirstPage + i} has other bytes");
                }
            }
        }
        finally
        {
            WrittenPageCopy.UsePagemapScan = true;
            python.StandardInput.WriteLine();
            python.WaitForExit(5000);
        }
    }

    [Fact]
    public void Pages_written_after_the_buffer_was_sized_are_captured_too()
    {
        var image = Path.Combine(_dir.Path, "memory.bin");
        using (var f = File.Create(image))
        {
            f.SetLength((long)Pages * Page);
        }

        // 10 pages before Prepare sizes the buffer (8 MiB of headroom: 2048 pages), 3000 more after it.
        var script = $$"""
            import mmap, sys
            f = open('{{image}}', 'r+b')
            m = mmap.mmap(f.fileno(), {{(long)Pages * Page}}, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            def write(pages):
                for p in pages: m[p * {{Page}}:(p + 1) * {{Page}}] = bytes([(p % 250) + 1]) * {{Page}}
            write(range(0, 10))
            print('ready', flush=True)
            sys.stdin.readline()
            write(range(1000, 4000))
            print('more', flush=True)
            sys.stdin.readline()
            """;
        using var python = Process.Start(new ProcessStartInfo("python3", ["-c", script]) { RedirectStandardInput = true, RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("ready", python.StandardOutput.ReadLine());
            var mapping = GuestRam.Find(python.Id, image);
            using var copy = WrittenPageCopy.Prepare(python.Id, mapping);
            python.StandardInput.WriteLine();
            Assert.Equal("more", python.StandardOutput.ReadLine());
            copy.Begin(CancellationToken.None);
            copy.Capture();
            var runs = copy.Runs();
            var pages = runs.SelectMany(r => Enumerable.Range(0, (int)r.PageCount).Select(i => r.FirstPage + i)).ToList();
            Assert.Equal(Enumerable.Range(0, 10).Concat(Enumerable.Range(1000, 3000)).Select(p => (long)p), pages);
            foreach (var run in runs)
            {
                for (var i = 0; i < run.PageCount; i++)
                {
                    Assert.True(run.Data.Span.Slice(i * Page, Page).IndexOfAnyExcept(Fill(run.FirstPage + i)) < 0, $"page {run.FirstPage + i} has other bytes");
                }
            }
        }
        finally
        {
            python.StandardInput.WriteLine();
            python.WaitForExit(5000);
        }
    }

    [Fact]
    public void Scanned_regions_become_sorted_disjoint_runs_whatever_order_or_overlap_the_scan_reported()
    {
        // Adjacent (a present page beside a swapped one), repeated after a resumed walk, overlapping, out of order, empty.
        long[] first = [10, 12, 14, 20, 22, 3, 40, 2], pages = [2, 3, 1, 5, 10, 1, 0, 1];

        var count = WrittenPageCopy.Coalesce(first, pages, first.Length);

        Assert.Equal([(2L, 2L), (10L, 5L), (20L, 12L)], Enumerable.Range(0, count).Select(i => (first[i], pages[i])));
    }
}
