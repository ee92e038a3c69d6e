using System.Collections.Concurrent;

namespace Forkd.PowerShell;

/// <summary>
/// Runs engine work on the thread pool while the pipeline thread waits here and carries out what the
/// work posts (WriteObject, WriteProgress, WriteVerbose, WriteError): PowerShell only allows those
/// from the pipeline thread. Posts that arrive after the pump finished are dropped, never thrown:
/// a late progress report must not crash pwsh. Used only through <see cref="ForkdCmdlet.RunEngine{T}"/>.
/// </summary>
internal sealed class PipelinePump : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly object _gate = new();
    private bool _closed;

    /// <summary>Queues an action for the pipeline thread; callable from any thread.</summary>
    public void Post(Action action)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _queue.Add(action);
            }
        }
    }

    /// <summary>Pumps posted actions until <paramref name="task"/> finishes, then returns its result (or throws its exception).</summary>
    public T Run<T>(Task<T> task)
    {
        ArgumentNullException.ThrowIfNull(task);
        Pump(task);
        return task.GetAwaiter().GetResult();
    }

    public void Run(Task task)
    {
        ArgumentNullException.ThrowIfNull(task);
        Pump(task);
        task.GetAwaiter().GetResult();
    }

    private void Pump(Task task)
    {
        // Once the pipeline is stopping (Ctrl+C), every Write* throws. The engine work must still be
        // waited for: it is cleaning up (stopping children it started, removing work dirs), and
        // returning early would let pwsh exit in the middle of that. So remember the first failure,
        // keep waiting, and rethrow it only when the work is done.
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? failure = null;
        void RunAction(Action action)
        {
            if (failure is not null)
            {
                return; // the pipeline is gone; later posts have nowhere to go
            }

            try
            {
                action();
            }
            catch (Exception ex)
            {
                failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex);
            }
        }

        while (!task.IsCompleted)
        {
            if (_queue.TryTake(out var action, 25))
            {
                RunAction(action);
            }
        }

        while (_queue.TryTake(out var action))
        {
            RunAction(action);
        }

        if (failure is not null)
        {
            // Observe the task's own outcome so it is not left unobserved, then report the pipeline's.
            _ = task.Exception;
            failure.Throw();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _closed = true;
        }

        _queue.Dispose();
    }
}
