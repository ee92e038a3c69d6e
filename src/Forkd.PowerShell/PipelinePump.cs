using System.Collections.Concurrent;

namespace Forkd.PowerShell;

/// <summary>
/// Runs engine work on the thread pool while the pipeline thread waits here and carries out what the
/// work posts (WriteObject, WriteProgress, WriteVerbose, WriteError): PowerShell only allows those
/// from the pipeline thread.
/// </summary>
internal sealed class PipelinePump : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();

    /// <summary>Queues an action for the pipeline thread; callable from any thread.</summary>
    public void Post(Action action) => _queue.Add(action);

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
        while (!task.IsCompleted)
        {
            if (_queue.TryTake(out var action, 25))
            {
                action();
            }
        }

        while (_queue.TryTake(out var action))
        {
            action();
        }
    }

    public void Dispose() => _queue.Dispose();
}
