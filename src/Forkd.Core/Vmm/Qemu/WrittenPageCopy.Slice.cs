using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Forkd.Core.Store;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>A slice of the Diff capture: its scan, its placement over its own buffers, and its copy.</summary>
internal sealed unsafe partial class WrittenPageCopy
{
    /// <summary>A page range of the mapping with its own runs, destination and timings; one thread works on it.</summary>
    private sealed class Slice(WrittenPageCopy owner, long firstPage, long endPage)
    {
        private readonly PageRegion[] _regions = GC.AllocateUninitializedArray<PageRegion>(4096, pinned: true);
        private readonly List<NativePages> _chunks = [];
        private long[] _runFirst = new long[64], _runPages = new long[64];
        private long[] _placedFirst = [];
        private int[] _placedChunk = [], _placedOffset = [], _placedPages = [];

        public int RunCount { get; private set; }

        public int PlacedCount { get; private set; }

        public TimeSpan ScanTime { get; private set; }

        public long WrittenPages => WrittenIn(firstPage, endPage);

        /// <summary>Written pages of the (already scanned) runs inside [from, to).</summary>
        public long WrittenIn(long from, long to)
        {
            long sum = 0;
            for (var i = 0; i < RunCount; i++)
            {
                sum += Math.Max(0, Math.Min(to, _runFirst[i] + _runPages[i]) - Math.Max(from, _runFirst[i]));
            }

            return sum;
        }

        /// <summary>Runs (already scanned) that start inside [from, to) or reach into it.</summary>
        public int RunsIn(long from, long to)
        {
            var count = 0;
            for (var i = 0; i < RunCount; i++)
            {
                if (_runFirst[i] < to && _runFirst[i] + _runPages[i] > from)
                {
                    count++;
                }
            }

            return count;
        }

        /// <summary>Page boundaries cutting the slice into <paramref name="parts"/> pieces holding about as many written pages each.</summary>
        public List<long> SplitPoints(int parts)
        {
            var bounds = new List<long> { firstPage };
            var total = WrittenPages;
            long seen = 0;
            var next = 1;
            for (var i = 0; i < RunCount && next < parts; i++)
            {
                while (next < parts && seen + _runPages[i] >= total * next / parts)
                {
                    var cut = _runFirst[i] + ((total * next / parts) - seen);
                    if (cut > bounds[^1] && cut < endPage)
                    {
                        bounds.Add(cut);
                    }

                    next++;
                }

                seen += _runPages[i];
            }

            bounds.Add(endPage);
            return bounds;
        }

        /// <summary>The destination (written pages then, a quarter more and some headroom for pages written before the stop), pre-faulted.</summary>
        public Slice Allocate(long writtenPages, int runsSeen, long headroomBytes)
        {
            var bytes = Math.Min((endPage - firstPage) * Page, (writtenPages * Page * 5 / 4) + headroomBytes);
            for (long left = bytes; left > 0; left -= ChunkBytes)
            {
                _chunks.Add(new NativePages((int)Math.Min(left, ChunkBytes)));
            }

            var capacity = runsSeen + 4096; // the runs, and the placed runs (split at chunk ends), without growing in the pause
            _runFirst = new long[capacity];
            _runPages = new long[capacity];
            _placedFirst = new long[capacity + _chunks.Count];
            _placedChunk = new int[_placedFirst.Length];
            _placedOffset = new int[_placedFirst.Length];
            _placedPages = new int[_placedFirst.Length];
            return this;
        }

        public long PlacedPages { get; private set; }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run()
        {
            var clock = Stopwatch.StartNew();
            FindWrittenRuns();
            ScanTime = clock.Elapsed;
            Place();
            Copy();
        }

        public void AddRunsTo(List<DiffRun> runs)
        {
            for (var i = 0; i < PlacedCount; i++)
            {
                runs.Add(new DiffRun(_placedFirst[i], _chunks[_placedChunk[i]].Memory.Slice(_placedOffset[i], _placedPages[i] * Page)));
            }
        }

        public void FreeBuffers()
        {
            foreach (var chunk in _chunks)
            {
                ((IDisposable)chunk).Dispose();
            }

            _chunks.Clear();
        }

        /// <summary>The written pages of the slice as sorted, disjoint runs (page index in the mapping, page count).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void FindWrittenRuns()
        {
            RunCount = 0;
            if (!UsePagemapScan || !TryPagemapScan())
            {
                ScanEntries();
            }

            RunCount = Coalesce(_runFirst, _runPages, RunCount);
        }

        private void AddRun(long first, long pages)
        {
            if (RunCount == _runFirst.Length)
            {
                Array.Resize(ref _runFirst, RunCount * 2);
                Array.Resize(ref _runPages, RunCount * 2);
            }

            _runFirst[RunCount] = first;
            _runPages[RunCount++] = pages;
        }

        /// <summary>PAGEMAP_SCAN over the slice; false where the kernel has no such ioctl (the pread scan from then on).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private bool TryPagemapScan()
        {
            var start = owner._mapping.Start;
            var end = (ulong)(start + (endPage * Page));
            fixed (PageRegion* vec = _regions)
            {
                var arg = new PmScanArg
                {
                    Size = (ulong)sizeof(PmScanArg),
                    Start = (ulong)(start + (firstPage * Page)),
                    End = end,
                    Vec = (ulong)vec,
                    VecLength = (ulong)_regions.Length,
                    CategoryInverted = PageIsFile, // written = not a file page ...
                    CategoryMask = PageIsFile,
                    CategoryAnyOfMask = PageIsPresent | PageIsSwapped, // ... and present or swapped out
                    ReturnMask = PageIsPresent | PageIsSwapped,
                };
                while (true)
                {
                    var count = ioctl((int)owner._pagemap.DangerousGetHandle(), PagemapScan, &arg);
                    if (count < 0)
                    {
                        UsePagemapScan = false;
                        RunCount = 0;
                        return false;
                    }

                    for (var i = 0; i < count; i++)
                    {
                        AddRun(((long)vec[i].Start - start) / Page, (long)(vec[i].End - vec[i].Start) / Page);
                    }

                    if (arg.WalkEnd >= end)
                    {
                        return true;
                    }

                    arg.Start = arg.WalkEnd;
                }
            }
        }

        /// <summary>The fallback: one pread of the slice's pagemap entries, scanned here.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void ScanEntries()
        {
            byte[] entries;
            lock (owner._scanFallback)
            {
                entries = owner._entries ??= GC.AllocateUninitializedArray<byte>(checked((int)(owner._mapping.Pages * 8)));
            }

            var slice = entries.AsSpan((int)(firstPage * 8), (int)((endPage - firstPage) * 8));
            GuestRam.ReadFully(owner._pagemap, slice, ((owner._mapping.Start / Page) + firstPage) * 8);
            long runStart = -1;
            for (var page = firstPage; page <= endPage; page++)
            {
                var written = page < endPage && GuestRam.IsWritten(BinaryPrimitives.ReadUInt64LittleEndian(slice[(int)((page - firstPage) * 8)..]));
                if (written && runStart < 0)
                {
                    runStart = page;
                }
                else if (!written && runStart >= 0)
                {
                    AddRun(runStart, page - runStart);
                    runStart = -1;
                }
            }
        }

        /// <summary>Lays the runs out over the pre-faulted chunks (a run is split at a chunk's end); any overflow gets a fresh chunk.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Place()
        {
            PlacedCount = 0;
            PlacedPages = 0;
            int chunk = 0, offset = 0;
            for (var r = 0; r < RunCount; r++)
            {
                long first = _runFirst[r], pages = _runPages[r], done = 0;
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
                        _chunks.Add(new NativePages(checked((int)Math.Min(want * Page, ChunkBytes))));
                        offset = 0;
                    }

                    var n = (int)Math.Min(want, (_chunks[chunk].Length - offset) / Page);
                    if (PlacedCount == _placedFirst.Length)
                    {
                        var grown = Math.Max(64, PlacedCount * 2);
                        Array.Resize(ref _placedFirst, grown);
                        Array.Resize(ref _placedChunk, grown);
                        Array.Resize(ref _placedOffset, grown);
                        Array.Resize(ref _placedPages, grown);
                    }

                    _placedFirst[PlacedCount] = first + done;
                    _placedChunk[PlacedCount] = chunk;
                    _placedOffset[PlacedCount] = offset;
                    _placedPages[PlacedCount++] = n;
                    PlacedPages += n;
                    offset += n * Page;
                    done += n;
                }
            }
        }

        /// <summary>process_vm_readv of the placed runs, up to 1024 a call.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Copy()
        {
            var local = stackalloc IoVec[MaxIovecs];
            var remote = stackalloc IoVec[MaxIovecs];
            var start = owner._mapping.Start;
            for (var from = 0; from < PlacedCount; from += MaxIovecs)
            {
                owner._token.ThrowIfCancellationRequested();
                var count = Math.Min(MaxIovecs, PlacedCount - from);
                long total = 0;
                for (var i = 0; i < count; i++)
                {
                    var p = from + i;
                    var length = (nuint)_placedPages[p] * Page;
                    local[i] = new IoVec(_chunks[_placedChunk[p]].Pointer + _placedOffset[p], length);
                    remote[i] = new IoVec((byte*)(start + (_placedFirst[p] * Page)), length);
                    total += (long)length;
                }

                var read = process_vm_readv(owner._pid, local, (nuint)count, remote, (nuint)count, 0);
                if (read != total)
                {
                    CopyWithProcMem(from, count); // refused (EPERM under some ptrace policies) or partial: the slow path
                }
            }
        }

        private void CopyWithProcMem(int from, int count)
        {
            using var mem = File.OpenHandle($"/proc/{owner._pid.ToString(CultureInfo.InvariantCulture)}/mem");
            for (var p = from; p < from + count; p++)
            {
                var destination = _chunks[_placedChunk[p]].GetSpan().Slice(_placedOffset[p], _placedPages[p] * Page);
                GuestRam.ReadFully(mem, destination, owner._mapping.Start + (_placedFirst[p] * Page));
            }
        }
    }
}
