using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// The Diff capture, split so the pause covers only what must see a still guest. <see cref="Prepare"/> runs while the
/// child still runs: it scans once to size and place the work: the mapping is cut into pieces holding about 2 MiB of
/// written pages each (2 to 8 of them; one when there is little to copy), each with its own destination, allocated
/// outside the GC heap and touched page by page (a fresh buffer doubled the copy time), and a helper thread waits.
/// In the pause, <see cref="Begin"/> sets the helper going and <see cref="Capture"/> joins it on the calling thread:
/// both take pieces until none is left (so a thread that gets a core late costs little), each finding its written pages with the kernel's <c>PAGEMAP_SCAN</c> ioctl (Linux 6.7+:
/// not file-backed, and present or swapped; else one pread of its part of the pagemap), then copying them with
/// <c>process_vm_readv</c>, 1024 runs a call (<c>/proc/&lt;pid&gt;/mem</c> when that is refused). The hot methods are
/// compiled optimized before the stop (a checkpoint runs them once, and tier-0 code made the scan four times slower);
/// the <see cref="DiffRun"/> list is built by <see cref="Runs"/>, after the resume.
/// </summary>
internal sealed unsafe partial class WrittenPageCopy : IDisposable
{
    private const int Page = MemoryDiff.PageSize;
    private const int ChunkBytes = 256 << 20;
    private const int MaxIovecs = 1024; // IOV_MAX
    private const long ParallelCopyBytes = 4 << 20;
    private const long PieceBytes = 2 << 20; // pieces of about this much written memory, 2 to MaxPieces of them
    private const int MaxPieces = 8;
    private const long HeadroomBytes = 4 << 20; // for pages written between Prepare and the stop, shared by the pieces

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
    private int _nextSlice;
    private readonly Worker[] _workers = [new(), new()];

    /// <summary>What each thread did in the capture (the helper, then the caller's): pieces, pages, and when it started and ended (ms from <see cref="Begin"/>).</summary>
    public IEnumerable<(string Thread, int Pieces, long Pages, double Start, double End)> WorkerTimes =>
        _workers.Select((w, i) => (i == 0 ? "caller" : "helper", w.Pieces, w.Pages, w.Started, w.Ended)).Where(w => w.Pieces > 0).Reverse();

    private WrittenPageCopy(int pid, GuestRamMapping mapping)
    {
        _pid = pid;
        _mapping = mapping;
        _pagemap = File.OpenHandle($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/pagemap");
    }

    /// <summary>Time of the pause's pagemap scans (the thread that scanned longer).</summary>
    public TimeSpan ScanTime { get; private set; }

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
            var bytes = whole.WrittenPages * Page;
            var parts = bytes >= ParallelCopyBytes && Environment.ProcessorCount >= 2 ? (int)Math.Clamp(bytes / PieceBytes, 2, MaxPieces) : 1;
            var bounds = whole.SplitPoints(parts);
            for (var k = 0; k + 1 < bounds.Count; k++)
            {
                var (from, to) = (bounds[k], bounds[k + 1]);
                copy._slices.Add(new Slice(copy, from, to).Allocate(whole.WrittenIn(from, to), whole.RunsIn(from, to), HeadroomBytes / (bounds.Count - 1)));
            }

            if (copy._slices.Count > 1)
            {
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

    /// <summary>
    /// Sets the helper thread going on the pieces. Call once the child is paused, before asking QEMU for the device
    /// state: the helper copies on the second core while QEMU's main thread writes it (a helper woken only after
    /// that reply sometimes waited a whole 3 ms scheduler slice for a core).
    /// </summary>
    public void Begin(CancellationToken cancellationToken)
    {
        _token = cancellationToken;
        _captureClock = Stopwatch.StartNew();
        if (_helper is not null)
        {
            _go.Set();
        }
    }

    /// <summary>Copies the pieces the helper has not taken, on this thread, and waits for the helper. Call after <see cref="Begin"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Capture()
    {
        var clock = _captureClock ?? throw new InvalidOperationException("Begin first");
        try
        {
            Work(_workers[0], clock);
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
            ExceptionDispatchInfo.Throw(_helperError);
        }

        ScanTime = _workers.Max(w => w.Scan);
    }

    /// <summary>Takes pieces until none is left: a thread that starts late or runs slow simply takes fewer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Work(Worker worker, Stopwatch clock)
    {
        worker.Started = clock.Elapsed.TotalMilliseconds;
        int next;
        while ((next = Interlocked.Increment(ref _nextSlice) - 1) < _slices.Count)
        {
            var slice = _slices[next];
            slice.Run();
            worker.Pieces++;
            worker.Pages += slice.PlacedPages;
            worker.Scan += slice.ScanTime;
        }

        worker.Ended = clock.Elapsed.TotalMilliseconds;
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
            Work(_workers[1], _captureClock!);
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

    private sealed class Worker
    {
        public double Started { get; set; }

        public double Ended { get; set; }

        public int Pieces { get; set; }

        public long Pages { get; set; }

        public TimeSpan Scan { get; set; }
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
