using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>
/// Base for every Forkd cmdlet: the engine (the composition root, built once per cmdlet from the environment),
/// one way to run engine work (<see cref="RunEngine{T}"/>) with one Ctrl+C policy, and one mapping from engine
/// errors to PowerShell errors. Cmdlets bind parameters, call the engine and write what it returns.
/// </summary>
public abstract class ForkdCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private ForkdEngine? _engine;

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline is stopped.</summary>
    protected CancellationToken StopToken => _stopping.Token;

    protected ForkdEngine Engine => _engine ??= ForkdEngine.FromEnvironment();

    protected ForkdPaths Paths => Engine.Paths;

    protected SnapshotStore Store => Engine.Store;

    protected override void StopProcessing() => _stopping.Cancel();

    /// <summary>
    /// Runs engine work off the pipeline thread while this thread carries out what it posts (objects, errors,
    /// progress, verbose lines) in order. The one Ctrl+C policy: StopProcessing cancels the work's token, this
    /// thread keeps waiting until the engine has cleaned up (stopped what it started, removed its work dirs), and
    /// then the pipeline stops. Engine errors come out as <see cref="ForkdException"/> for the caller to map.
    /// </summary>
    protected T RunEngine<T>(Func<EngineCall, Task<T>> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        using var pump = new PipelinePump();
        var call = new EngineCall(this, pump, StopToken);
        try
        {
            return pump.Run(Task.Run(() => work(call), StopToken));
        }
        catch (OperationCanceledException) when (StopToken.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
        catch (Exception) when (StopToken.IsCancellationRequested)
        {
            // Whatever the interrupted work threw while being cancelled, it has cleaned up: just stop.
            throw new PipelineStoppedException();
        }
        finally
        {
            call.CompleteProgress();
        }
    }

    protected void RunEngine(Func<EngineCall, Task> work) => RunEngine<bool>(async call =>
    {
        await work(call).ConfigureAwait(false);
        return true;
    });

    /// <summary>Turns an engine error into a non-terminating PowerShell error for one target.</summary>
    protected void WriteForkdError(ForkdException ex, object? target = null) => WriteError(ToErrorRecord(ex, target));

    /// <summary>Turns an engine error into a terminating PowerShell error.</summary>
    protected void ThrowForkdError(ForkdException ex, object? target = null) => ThrowTerminatingError(ToErrorRecord(ex, target));

    protected void WriteError(string errorId, ErrorCategory category, string message, object? target, string? hint = null, Exception? inner = null)
    {
        var record = new ErrorRecord(new ForkdException(errorId, ForkdErrorKindFor(category), message, target, inner), errorId, category, target);
        if (hint is not null)
        {
            record.ErrorDetails = new ErrorDetails(message) { RecommendedAction = hint };
        }

        WriteError(record);
    }

    public static ErrorRecord ToErrorRecord(ForkdException ex, object? target = null)
    {
        ArgumentNullException.ThrowIfNull(ex);
        var record = new ErrorRecord(ex, ex.ErrorId, CategoryOf(ex.Kind), target ?? ex.Target);
        if (ex.Hint is not null)
        {
            record.ErrorDetails = new ErrorDetails(ex.Message) { RecommendedAction = ex.Hint };
        }

        return record;
    }

    public static ErrorCategory CategoryOf(ForkdErrorKind kind) => kind switch
    {
        ForkdErrorKind.InvalidArgument => ErrorCategory.InvalidArgument,
        ForkdErrorKind.NotFound => ErrorCategory.ObjectNotFound,
        ForkdErrorKind.AlreadyExists => ErrorCategory.ResourceExists,
        ForkdErrorKind.InUse => ErrorCategory.ResourceBusy,
        ForkdErrorKind.InvalidData => ErrorCategory.InvalidData,
        ForkdErrorKind.NotSupported => ErrorCategory.NotImplemented,
        ForkdErrorKind.Timeout => ErrorCategory.OperationTimeout,
        ForkdErrorKind.PermissionDenied => ErrorCategory.PermissionDenied,
        ForkdErrorKind.ConnectionFailed => ErrorCategory.ConnectionError,
        ForkdErrorKind.ProtocolError => ErrorCategory.ProtocolError,
        ForkdErrorKind.Stopped => ErrorCategory.OperationStopped,
        _ => ErrorCategory.NotSpecified,
    };

    private static ForkdErrorKind ForkdErrorKindFor(ErrorCategory category) => category switch
    {
        ErrorCategory.InvalidArgument => ForkdErrorKind.InvalidArgument,
        ErrorCategory.ObjectNotFound => ForkdErrorKind.NotFound,
        ErrorCategory.ResourceExists => ForkdErrorKind.AlreadyExists,
        ErrorCategory.ResourceBusy => ForkdErrorKind.InUse,
        ErrorCategory.InvalidData => ForkdErrorKind.InvalidData,
        _ => ForkdErrorKind.Failed,
    };

    /// <summary>Validates a tag parameter, writing the InvalidTag error for this target. Returns false when invalid.</summary>
    protected bool CheckTag(string tag, bool terminating = false)
    {
        try
        {
            TagRule.Validate(tag);
            return true;
        }
        catch (ForkdException ex)
        {
            if (terminating)
            {
                ThrowForkdError(ex, tag);
            }

            WriteForkdError(ex, tag);
            return false;
        }
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            _stopping.Dispose();
        }
    }
}
