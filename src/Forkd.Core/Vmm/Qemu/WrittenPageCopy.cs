using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// The Diff capture, split so the pause covers only what must see a still guest. <see cref="Prepare"/> runs while the
/// child still runs: it reads the pagemap once to size the destination (the written pages then, plus headroom for
/// pages written before the stop), allocates it pinned and touches every page of it, so no page fault of ours lands in
/// the pause (a fresh buffer doubled the copy time). <see cref="Capture"/> runs paused: the written pages as ranges from
/// the kernel's <c>PAGEMAP_SCAN</c> ioctl (Linux 6.7+: not file-backed, and present or swapped), or else one pread of the
/// mapping's pagemap and a scan of its entries; then the runs copied with <c>process_vm_readv</c>, up to 1024 runs per
/// call, on two threads when there is more than a little to copy (<c>/proc/&lt;pid&gt;/mem</c> when that is refused).
/// </summary>
internal sealed unsafe partial class WrittenPageCopy : IDisposable
{
    private const int Page = MemoryDiff.PageSize;
    private const int ChunkBytes = 256 << 20;
    private const int MaxIovecs = 1024; // IOV_MAX

    private const long ParallelCopyBytes = 4 << 20;
    /// <summary>False where the kernel has no PAGEMAP_SCAN (found on first use); tests turn it off to check the pread scan.</summary>
    internal static bool UsePagemapScan { get; set; } = true;

    private readonly int _pid;
    private readonly GuestRamMapping _mapping;
    private readonly byte[] _entries;
    private readonly List<byte[]> _chunks = [];
    private SafeFileHandle? _pagemap;

    private WrittenPageCopy(int pid, GuestRamMapping mapping)
    {
        _pid = pid;
        _mapping = mapping;
        _entries = GC.AllocateUninitializedArray<byte>(checked((int)(mapping.Pages * 8)), pinned: true);
    }

    /// <summary>Time of the pause's pagemap read and scan.</summary>
    public TimeSpan ScanTime { get; private set; }

    /// <summary>Time of the pause's page copy.</summary>
    public TimeSpan CopyTime { get; private set; }

    /// <summary>Sizes, allocates and pre-faults the destination while the child runs.</summary>
    public static WrittenPageCopy Prepare(int pid, GuestRamMapping mapping)
    {
        var copy = new WrittenPageCopy(pid, mapping);
        try
        {
            copy._pagemap = File.OpenHandle($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/pagemap");
            var written = copy.FindWrittenRuns().Sum(r => r.Pages);

            var bytes = Math.Min(mapping.Length, (written * Page * 5 / 4) + (8L << 20));
            for (long left = bytes; left > 0; left -= ChunkBytes)
            {
                var chunk = GC.AllocateUninitializedArray<byte>((int)Math.Min(left, ChunkBytes), pinned: true);
                for (var i = 0; i < chunk.Length; i += Page)
                {
                    chunk[i] = 0; // fault it in now, not in the pause
                }

                copy._chunks.Add(chunk);
            }

            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    /// <summary>The pages of the mapping the child wrote, coalesced into runs, with their bytes. Call while it is paused.</summary>
    public List<DiffRun> Capture(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var runs = FindWrittenRuns();
        ScanTime = clock.Elapsed;
        var result = Place(runs);
        CopyInto(result, cancellationToken);
        CopyTime = clock.Elapsed - ScanTime;
        return result;
    }

    /// <summary>Lays the runs out over the pre-faulted chunks (a run is split at a chunk's end); any overflow gets fresh arrays.</summary>
    private List<DiffRun> Place(List<(long FirstPage, long Pages)> runs)
    {
        var placed = new List<DiffRun>(runs.Count);
        int chunk = 0, offset = 0;
        foreach (var (first, pages) in runs)
        {
            long done = 0;
            while (done < pages)
            {
                if (chunk < _chunks.Count && offset + Page > _chunks[chunk].Length)
                {
                    chunk++;
                    offset = 0;
                }

                var want = pages - done;
                if (chunk >= _chunks.Count)
                {
                    // Written after Prepare and beyond its headroom: allocated here (rare, and only the excess).
                    var extra = GC.AllocateUninitializedArray<byte>(checked((int)Math.Min(want * Page, ChunkBytes)), pinned: true);
                    _chunks.Add(extra);
                    offset = 0;
                }

                var n = (int)Math.Min(want, (_chunks[chunk].Length - offset) / Page);
                placed.Add(new DiffRun(first + done, new ReadOnlyMemory<byte>(_chunks[chunk], offset, n * Page)));
                offset += n * Page;
                done += n;
            }
        }

        return placed;
    }

    /// <summary>The written pages as sorted, coalesced runs (page index in the mapping, page count).</summary>
    private List<(long FirstPage, long Pages)> FindWrittenRuns()
    {
        if (UsePagemapScan && TryPagemapScan() is { } scanned)
        {
            return scanned;
        }

        GuestRam.ReadFully(_pagemap!, _entries, _mapping.Start / Page * 8);
        var runs = new List<(long FirstPage, long Pages)>();
        long runStart = -1;
        for (long page = 0; page <= _mapping.Pages; page++)
        {
            var written = page < _mapping.Pages && IsWrittenAt(page);
            if (written && runStart < 0)
            {
                runStart = page;
            }
            else if (!written && runStart >= 0)
            {
                runs.Add((runStart, page - runStart));
                runStart = -1;
            }
        }

        return runs;
    }

    /// <summary>PAGEMAP_SCAN over the mapping; null where the kernel has no such ioctl (then the pread scan is used from now on).</summary>
    private List<(long FirstPage, long Pages)>? TryPagemapScan()
    {
        const ulong isFile = 1 << 2, isPresent = 1 << 3, isSwapped = 1 << 4;
        var regions = new PageRegion[4096];
        var runs = new List<(long FirstPage, long Pages)>();
        var end = (ulong)(_mapping.Start + _mapping.Length);
        fixed (PageRegion* vec = regions)
        {
            var arg = new PmScanArg
            {
                Size = (ulong)sizeof(PmScanArg),
                Start = (ulong)_mapping.Start,
                End = end,
                Vec = (ulong)vec,
                VecLength = (ulong)regions.Length,
                CategoryInverted = isFile, // written = not a file page ...
                CategoryMask = isFile,
                CategoryAnyOfMask = isPresent | isSwapped, // ... and present or swapped out
                ReturnMask = isPresent | isSwapped,
            };
            while (true)
            {
                var count = ioctl((int)_pagemap!.DangerousGetHandle(), PagemapScan, &arg);
                if (count < 0)
                {
                    UsePagemapScan = false;
                    return null;
                }

                for (var i = 0; i < count; i++)
                {
                    runs.Add((((long)regions[i].Start - _mapping.Start) / Page, (long)(regions[i].End - regions[i].Start) / Page));
                }

                if (arg.WalkEnd >= end)
                {
                    return Coalesce(runs);
                }

                arg.Start = arg.WalkEnd;
            }
        }
    }

    /// <summary>
    /// The regions a scan reported as sorted, disjoint runs: adjacent ones joined (a present page beside a swapped
    /// one), overlapping ones merged. A scan resumed at <c>walk_end</c> after a full vector can report again pages at
    /// the end of the last region it returned, and a diff with overlapping runs is damaged for every reader.
    /// </summary>
    internal static List<(long FirstPage, long Pages)> Coalesce(List<(long FirstPage, long Pages)> regions)
    {
        regions.Sort((x, y) => x.FirstPage.CompareTo(y.FirstPage));
        var runs = new List<(long FirstPage, long Pages)>(regions.Count);
        foreach (var (first, pages) in regions)
        {
            if (pages <= 0)
            {
                continue;
            }

            if (runs.Count > 0 && first <= runs[^1].FirstPage + runs[^1].Pages)
            {
                var stop = Math.Max(runs[^1].FirstPage + runs[^1].Pages, first + pages);
                runs[^1] = (runs[^1].FirstPage, stop - runs[^1].FirstPage);
            }
            else
            {
                runs.Add((first, pages));
            }
        }

        return runs;
    }

    private void CopyInto(List<DiffRun> runs, CancellationToken cancellationToken)
    {
        long total = 0;
        foreach (var run in runs)
        {
            total += run.Data.Length;
        }

        if (total < ParallelCopyBytes || Environment.ProcessorCount < 2 || runs.Count < 2)
        {
            CopyBatches(runs, cancellationToken);
            return;
        }

        // Two halves by bytes, copied side by side (the copy is bound by memory bandwidth, and one core leaves it idle).
        long half = 0;
        var split = 0;
        while (split < runs.Count - 1 && half < total / 2)
        {
            half += runs[split++].Data.Length;
        }

        Parallel.Invoke(new ParallelOptions { CancellationToken = cancellationToken },
            () => CopyBatches(runs.GetRange(0, split), cancellationToken),
            () => CopyBatches(runs.GetRange(split, runs.Count - split), cancellationToken));
    }

    private void CopyBatches(List<DiffRun> runs, CancellationToken cancellationToken)
    {
        var local = stackalloc IoVec[MaxIovecs];
        var remote = stackalloc IoVec[MaxIovecs];
        for (var start = 0; start < runs.Count; start += MaxIovecs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var count = Math.Min(MaxIovecs, runs.Count - start);
            long total = 0;
            for (var i = 0; i < count; i++)
            {
                var run = runs[start + i];
                MemoryMarshal.TryGetArray(run.Data, out var segment);
                local[i] = new IoVec((byte*)Marshal.UnsafeAddrOfPinnedArrayElement(segment.Array!, segment.Offset), (nuint)segment.Count);
                remote[i] = new IoVec((byte*)(_mapping.Start + (run.FirstPage * Page)), (nuint)segment.Count);
                total += segment.Count;
            }

            var read = process_vm_readv(_pid, local, (nuint)count, remote, (nuint)count, 0);
            if (read != total)
            {
                CopyWithProcMem(runs.GetRange(start, count)); // refused (EPERM under some ptrace policies) or partial: the slow path
            }
        }
    }

    private void CopyWithProcMem(List<DiffRun> runs)
    {
        using var mem = File.OpenHandle($"/proc/{_pid.ToString(CultureInfo.InvariantCulture)}/mem");
        foreach (var run in runs)
        {
            MemoryMarshal.TryGetArray(run.Data, out var segment);
            GuestRam.ReadFully(mem, segment.AsSpan(), _mapping.Start + (run.FirstPage * Page));
        }
    }

    private bool IsWrittenAt(long page) => GuestRam.IsWritten(BinaryPrimitives.ReadUInt64LittleEndian(_entries.AsSpan((int)(page * 8), 8)));

    public void Dispose() => _pagemap?.Dispose();

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct IoVec(byte* address, nuint length)
    {
        public readonly byte* Address = address;
        public readonly nuint Length = length;
    }

    /// <summary>_IOWR('f', 16, struct pm_scan_arg): linux/fs.h.</summary>
    private const ulong PagemapScan = 0xC0606610;

    [StructLayout(LayoutKind.Sequential)]
    private struct PageRegion
    {
        public ulong Start;
        public ulong End;
        public ulong Categories;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PmScanArg
    {
        public ulong Size;
        public ulong Flags;
        public ulong Start;
        public ulong End;
        public ulong WalkEnd;
        public ulong Vec;
        public ulong VecLength;
        public ulong MaxPages;
        public ulong CategoryInverted;
        public ulong CategoryMask;
        public ulong CategoryAnyOfMask;
        public ulong ReturnMask;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, PmScanArg* arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, IoVec* localIov, nuint localCount, IoVec* remoteIov, nuint remoteCount, nuint flags);
}
