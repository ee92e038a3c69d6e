namespace Forkd.Core;

/// <summary>What kind of failure an engine error is; the cmdlets map it onto an ErrorCategory.</summary>
public enum ForkdErrorKind
{
    InvalidArgument,
    NotFound,
    AlreadyExists,
    InUse,
    InvalidData,
    NotSupported,
    Timeout,
    PermissionDenied,
    ConnectionFailed,
    ProtocolError,
    Stopped,
    Failed,
}

/// <summary>
/// An engine error with a stable identifier. <see cref="ErrorId"/> never changes between
/// releases: scripts match on it, so the message text is free to improve.
/// </summary>
public class ForkdException : Exception
{
    public ForkdException(string errorId, ForkdErrorKind kind, string message, object? target = null, Exception? inner = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        Target = target;
    }

    public ForkdException() : this("ForkdError", ForkdErrorKind.Failed, "forkd operation failed") { }

    public ForkdException(string message) : this("ForkdError", ForkdErrorKind.Failed, message) { }

    public ForkdException(string message, Exception inner) : this("ForkdError", ForkdErrorKind.Failed, message, null, inner) { }

    public string ErrorId { get; }

    public ForkdErrorKind Kind { get; }

    /// <summary>The object the error is about (a tag, a path, a child id).</summary>
    public object? Target { get; }

    /// <summary>A hint for the user: what to run or check next. Shown as the error's RecommendedAction.</summary>
    public string? Hint { get; init; }
}
