using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// The Diff capture, split so the pause covers only what must see a still guest. <see cref="Prepare"/> runs while the
/// child still runs: it scans once to size and place the work: the mapping is cut in two slices holding about half of
/// the written pages each (one slice when there is little to copy), each with its own destination, allocated pinned and
/// touched page by page (a fresh buffer doubled the copy time) outside the GC heap, and a helper thread waits for the
/// second slice.
/// <see cref="Capture"/> runs paused: both slices side by side, each finding its written pages with the kernel's
/// <c>PAGEMAP_SCAN</c> ioctl (Linux 6.7+: not file-backed, and present or swapped; else one pread of its part of the
/// pagemap), then copying them with <c>process_vm_readv</c>, 1024 runs a call (<c>/proc/&lt;pid&gt;/mem</c> when that is
/// refused). The hot methods are compiled optimized on first use (a checkpoint runs them once, and tier-0 code made the
/// scan four times slower); the <see cref="DiffRun"/> list is built by <see cref="Runs"/>, after the resume.
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
    private readonly SafeFileHandle _pagemap;
    private readonly List<Slice> _slices = [];
    private readonly Lock _scanFallback = new();
    private byte[]? _entries;
    private Thread? _helper;
    private readonly ManualResetEventSlim _go = new(), _helperDone = new();
    private volatile bool _disposed;
    private Exception? _helperError;
    private CancellationToken _token;
    private Stopwatch? _captureClock;

    /// <summary>When each slice started and ended its work, in ms from the start of the capture.</summary>
    public IEnumerable<(double Start, double End, long Pages)> SliceTimes => _slices.Select(s => (s.Started, s.Ended, s.PlacedPages));

    private WrittenPageCopy(int pid, GuestRamMapping mapping)
    {
        _pid = pid;
        _mapping = mapping;
        _pagemap = File.OpenHandle($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/pagemap");
    }

    /// <summary>Time of the pause's pagemap scan (the longer of the two slices').</summary>
    public TimeSpan ScanTime { get; private set; }

    /// <summary>Time of the pause's page copy after the scans (the slice that finished last).</summary>
    public TimeSpan CopyTime { get; private set; }

    /// <summary>Sizes, places and pre-faults the destination while the child runs.</summary>
    public static WrittenPageCopy Prepare(int pid, GuestRamMapping mapping)
    {
        CompileHotPath();
        var copy = new WrittenPageCopy(pid, mapping);
        try
        {
            _ = process_vm_readv(pid, null, 0, null, 0, 0); // binds the import now (a first call cost 3 ms in the pause)
            var whole = new Slice(copy, 0, mapping.Pages);
            whole.FindWrittenRuns();
            var written = whole.WrittenPages;
            var split = mapping.Pages;
            if (written * Page >= ParallelCopyBytes && Environment.ProcessorCount >= 2)
            {
                split = whole.PageAfterHalfOfWritten();
            }

            copy._slices.Add(new Slice(copy, 0, split).Allocate(whole.WrittenIn(0, split), whole.RunCount));
            if (split < mapping.Pages)
            {
                copy._slices.Add(new Slice(copy, split, mapping.Pages).Allocate(whole.WrittenIn(split, mapping.Pages), whole.RunCount));
                copy._helper = new Thread(copy.HelperLoop) { IsBackground = true, Name = "forkd diff copy" };
                copy._helper.Start();
            }

            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    /// <summary>Finds and copies the written pages, the slices side by side. Call while the child is paused, once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Capture(CancellationToken cancellationToken)
    {
        _token = cancellationToken;
        var clock = Stopwatch.StartNew();
        _captureClock = clock;
        if (_helper is not null)
        {
            _go.Set();
        }

        try
        {
            _slices[0].Run(clock);
        }
        finally
        {
            if (_helper is not null)
            {
                _helperDone.Wait(CancellationToken.None); // the helper writes into buffers: it ends before the capture does
            }
        }

        if (_helperError is not null)
        {
            ExceptionDispatchInfoThrow(_helperError);
        }

        ScanTime = _slices.Max(s => s.ScanTime);
        CopyTime = clock.Elapsed - ScanTime;
    }

    /// <summary>The captured pages as sorted runs over the pre-faulted buffers (call after <see cref="Capture"/>).</summary>
    public List<DiffRun> Runs()
    {
        var runs = new List<DiffRun>(_slices.Sum(s => s.PlacedCount));
        foreach (var slice in _slices)
        {
            slice.AddRunsTo(runs);
        }

        return runs;
    }

    private static int _compiled;

    /// <summary>JIT-compiles the pause's methods now: compiled on first call they would cost milliseconds inside the pause.</summary>
    private static void CompileHotPath()
    {
        if (Interlocked.Exchange(ref _compiled, 1) == 1)
        {
            return;
        }

        const System.Reflection.BindingFlags Any = System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Static
            | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly;
        foreach (var type in new[] { typeof(WrittenPageCopy), typeof(Slice) })
        {
            foreach (var method in type.GetMethods(Any))
            {
                if (!method.IsAbstract && !method.ContainsGenericParameters)
                {
                    RuntimeHelpers.PrepareMethod(method.MethodHandle);
                }
            }
        }
    }

    private void HelperLoop()
    {
        _go.Wait();
        if (_disposed)
        {
            return;
        }

        try
        {
            _slices[1].Run(_captureClock!);
        }
        catch (Exception e)
        {
            _helperError = e;
        }
        finally
        {
            _helperDone.Set();
        }
    }

    private static void ExceptionDispatchInfoThrow(Exception e) => System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();

    /// <summary>
    /// Sorted (first page, page count) pairs made disjoint in place: adjacent ones joined (a present page beside a
    /// swapped one), overlapping ones merged (a scan resumed at <c>walk_end</c> after a full vector can report again
    /// the end of the last region; a diff with overlapping runs is damaged for every reader). Returns the new count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static int Coalesce(long[] first, long[] pages, int count)
    {
        for (var i = 1; i < count; i++)
        {
            if (first[i] < first[i - 1])
            {
                Array.Sort(first, pages, 0, count); // not what the kernel reports: only a defence
                break;
            }
        }

        var n = 0;
        for (var i = 0; i < count; i++)
        {
            if (pages[i] <= 0)
            {
                continue;
            }

            if (n > 0 && first[i] <= first[n - 1] + pages[n - 1])
            {
                pages[n - 1] = Math.Max(first[n - 1] + pages[n - 1], first[i] + pages[i]) - first[n - 1];
            }
            else
            {
                first[n] = first[i];
                pages[n] = pages[i];
                n++;
            }
        }

        return n;
    }

    public void Dispose()
    {
        _disposed = true;
        _go.Set();
        _helper?.Join();
        foreach (var slice in _slices)
        {
            slice.FreeBuffers(); // the runs of Runs() point here: used up before the dispose
        }

        _pagemap.Dispose();
        _go.Dispose();
        _helperDone.Dispose();
    }
}
