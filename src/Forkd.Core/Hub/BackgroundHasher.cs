using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Forkd.Core.Hub;

/// <summary>
/// SHA-256 on its own thread, so hashing (the longest single job of a pack or unpack) runs beside
/// reading, compressing and writing instead of after them. Buffers are handed over with a release
/// callback that runs once they are hashed; the queue is bounded, so memory is too.
/// </summary>
internal sealed class BackgroundHasher : IDisposable
{
    private readonly BlockingCollection<(byte[] Buffer, int Length, Action<byte[]> Release)> _queue = new(8);
    private readonly Task<string> _worker;

    public BackgroundHasher()
    {
        _worker = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Returns a rented buffer to the shared pool.</summary>
    public static readonly Action<byte[]> ReturnToPool = b => ArrayPool<byte>.Shared.Return(b);

    public void Add(byte[] buffer, int length, Action<byte[]> release) => _queue.Add((buffer, length, release));

    /// <summary>Lowercase hex SHA-256 of everything added.</summary>
    public string Finish()
    {
        _queue.CompleteAdding();
        return _worker.GetAwaiter().GetResult();
    }

    private string Run()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (buffer, length, release) in _queue.GetConsumingEnumerable())
        {
            hash.AppendData(buffer, 0, length);
            release(buffer);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void Dispose()
    {
        if (!_queue.IsAddingCompleted)
        {
            _queue.CompleteAdding();
            try
            {
                _worker.Wait();
            }
            catch (AggregateException)
            {
                // the operation is failing already; its first error is what gets reported
            }
        }

        _queue.Dispose();
    }
}

/// <summary>A pooled buffer shared by two consumers; it goes back to the pool when both are done.</summary>
internal sealed class SharedBuffer
{
    private int _holders = 2;

    public SharedBuffer(int size)
    {
        Array = ArrayPool<byte>.Shared.Rent(size);
    }

    public byte[] Array { get; }

    public void Release()
    {
        if (Interlocked.Decrement(ref _holders) == 0)
        {
            ArrayPool<byte>.Shared.Return(Array);
        }
    }
}
