using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>
/// Base for every Forkd cmdlet: the resolved paths, a cancellation token that Ctrl+C
/// (StopProcessing) trips, and one mapping from engine errors to PowerShell errors.
/// </summary>
public abstract class ForkdCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private ForkdPaths? _paths;

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline is stopped.</summary>
    protected CancellationToken StopToken => _stopping.Token;

    protected ForkdPaths Paths => _paths ??= ForkdPaths.FromEnvironment();

    protected SnapshotStore Store => new(Paths) { RunningChildrenOf = EngineHooks.RunningChildrenOf(Paths) };

    protected override void StopProcessing() => _stopping.Cancel();

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
