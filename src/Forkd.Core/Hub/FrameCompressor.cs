using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Hub;

/// <summary>
/// Turns a byte stream into a sequence of independent zstd frames written at increasing offsets of a
/// file: data is cut into chunks compressed on every core at once, while long zero runs become RLE
/// frames that cost no compression at all. The producer's calls block when enough work is queued, so
/// memory stays bounded (a few chunks per core) whatever the input size.
/// </summary>
internal sealed class FrameCompressor : IDisposable
{
    public const int ChunkSize = 4 * 1024 * 1024;

    /// <summary>Zero runs at least this long get their own RLE frame; shorter ones stay inline.</summary>
    public const int ZeroRunThreshold = 1024 * 1024;

    private readonly SafeFileHandle _output;
    private readonly int _level;
    private readonly CancellationTokenSource _failed;
    private readonly BlockingCollection<Job> _work;
    private readonly BlockingCollection<Job> _ordered;
    private readonly Task[] _threads;
    private byte[] _chunk;
    private int _chunkLength;
    private long _pendingZeros;
    private long _offset;

    public FrameCompressor(SafeFileHandle output, long startOffset, int level, CancellationToken cancellationToken)
    {
        _output = output;
        _offset = startOffset;
        _level = level;
        _failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var workers = Math.Max(1, Environment.ProcessorCount);
        _work = new BlockingCollection<Job>(workers * 2);
        _ordered = new BlockingCollection<Job>(workers * 4);
        _chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        _threads = new Task[workers + 1];
        for (var i = 0; i < workers; i++)
        {
            _threads[i] = Task.Factory.StartNew(CompressLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        _threads[workers] = Task.Factory.StartNew(WriteLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Uncompressed bytes accepted so far.</summary>
    public long InputBytes { get; private set; }

    public void Append(ReadOnlySpan<byte> data)
    {
        FlushZeros();
        InputBytes += data.Length;
        while (data.Length > 0)
        {
            var n = Math.Min(data.Length, ChunkSize - _chunkLength);
            data[..n].CopyTo(_chunk.AsSpan(_chunkLength));
            _chunkLength += n;
            data = data[n..];
            if (_chunkLength == ChunkSize)
            {
                SubmitChunk();
            }
        }
    }

    public void AppendZeros(long count)
    {
        _pendingZeros += count;
        InputBytes += count;
    }

    /// <summary>Writes everything still queued and returns the end offset of the last frame.</summary>
    public long Complete()
    {
        FlushZeros();
        SubmitChunk();
        _work.CompleteAdding();
        _ordered.CompleteAdding();
        WaitAll();
        return _offset;
    }

    private void FlushZeros()
    {
        if (_pendingZeros == 0)
        {
            return;
        }

        var zeros = _pendingZeros;
        _pendingZeros = 0;
        if (zeros < ZeroRunThreshold)
        {
            InputBytes -= zeros;
            Span<byte> block = stackalloc byte[4096];
            block.Clear();
            while (zeros > 0)
            {
                var n = (int)Math.Min(block.Length, zeros);
                Append(block[..n]);
                zeros -= n;
            }

            return;
        }

        SubmitChunk();
        var frame = new ArrayBufferWriter<byte>(16 + (int)(zeros / ZstdFrames.MaxBlockSize * 4) + 8);
        ZstdFrames.WriteZeroFrame(frame, zeros);
        var job = new Job(null, 0);
        job.Done.SetResult(new Output(frame.WrittenMemory.ToArray(), frame.WrittenCount, Pooled: false));
        Add(_ordered, job);
    }

    private void SubmitChunk()
    {
        if (_chunkLength == 0)
        {
            return;
        }

        var job = new Job(_chunk, _chunkLength);
        _chunk = ArrayPool<byte>.Shared.Rent(ChunkSize);
        _chunkLength = 0;
        Add(_ordered, job);
        Add(_work, job);
    }

    private void Add(BlockingCollection<Job> queue, Job job)
    {
        try
        {
            queue.Add(job, _failed.Token);
        }
        catch (OperationCanceledException)
        {
            WaitAll(); // surfaces the worker's real error, or the caller's cancellation
            throw;
        }
    }

    private void CompressLoop()
    {
        using var compressor = ZstdCodec.CreateEncoder(_level);
        try
        {
            foreach (var job in _work.GetConsumingEnumerable(_failed.Token))
            {
                try
                {
                    var bound = ZstdCodec.CompressBound(job.Length);
                    var dest = ArrayPool<byte>.Shared.Rent(bound);
                    var written = compressor.Compress(job.Input.AsSpan(0, job.Length), dest);
                    job.Done.SetResult(new Output(dest, written, Pooled: true));
                }
                catch (Exception ex)
                {
                    job.Done.TrySetException(ex);
                    throw;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(job.Input!);
                }
            }
        }
        catch (Exception)
        {
            _failed.Cancel();
            throw;
        }
    }

    private void WriteLoop()
    {
        try
        {
            foreach (var job in _ordered.GetConsumingEnumerable(_failed.Token))
            {
                job.Done.Task.Wait(_failed.Token);
                var output = job.Done.Task.Result;
                RandomAccess.Write(_output, output.Buffer.AsSpan(0, output.Length), _offset);
                _offset += output.Length;
                if (output.Pooled)
                {
                    ArrayPool<byte>.Shared.Return(output.Buffer);
                }
            }
        }
        catch (Exception)
        {
            _failed.Cancel();
            throw;
        }
    }

    private void WaitAll()
    {
        try
        {
            Task.WaitAll(_threads);
        }
        catch (AggregateException ex)
        {
            var real = ex.InnerExceptions.FirstOrDefault(e => e is not OperationCanceledException) ?? ex.InnerExceptions[0];
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(real).Throw();
        }
    }

    public void Dispose()
    {
        if (!_work.IsAddingCompleted)
        {
            _failed.Cancel();
            try
            {
                Task.WaitAll(_threads);
            }
            catch (AggregateException)
            {
                // already failing or cancelled; the caller reports the first error
            }
        }

        ArrayPool<byte>.Shared.Return(_chunk);
        _work.Dispose();
        _ordered.Dispose();
        _failed.Dispose();
    }

    private sealed record Output(byte[] Buffer, int Length, bool Pooled);

    private sealed class Job(byte[]? input, int length)
    {
        public byte[]? Input { get; } = input;

        public int Length { get; } = length;

        // Completions wake the writer directly, not through the thread pool (one hop less per chunk).
        public TaskCompletionSource<Output> Done { get; } = new();
    }
}
