namespace Forkd.Core.Guest;

/// <summary>The agent's answer to <c>ping</c>.</summary>
/// <param name="NumpyVersion">NumPy's version in the guest, or null when it is not installed.</param>
/// <param name="Pid">The agent's process id in the guest.</param>
/// <param name="AgentLang"><c>python</c>, or the warm-up bridge's language (<c>node</c>).</param>
/// <param name="WarmupReady">True once a configured warm-up process sent its ready line.</param>
/// <param name="PythonVersion">The guest's Python version (null from forkd 0.1.3 agents).</param>
/// <param name="Duration">Round trip as the host measured it.</param>
public sealed record AgentPing(string? NumpyVersion, int Pid, string AgentLang, bool WarmupReady, string? PythonVersion, TimeSpan Duration)
{
    /// <summary>The child this answer came from; set by the caller that knows it.</summary>
    public string? ChildId { get; init; }

    /// <summary>The agent process's generation id (fixed when it started; snapshot children share their parent's); null from forkd's agents.</summary>
    public string? Generation { get; init; }

    /// <summary>The warm-up handshake: <c>none</c>, <c>starting</c>, <c>ready</c> or <c>failed</c>; null from forkd's agents.</summary>
    public string? WarmupState { get; init; }
}

/// <summary>The outcome of <c>exec</c>: a process run in the guest without a shell.</summary>
/// <param name="ExitCode">The process's exit code (negative: killed by that signal); 1 with <see cref="Error"/> when it could not run or timed out.</param>
/// <param name="Error">Set when the agent could not run the command (<c>FileNotFoundError: …</c>, <c>TimeoutExpired: …</c>).</param>
/// <param name="Traceback">The guest's Python traceback for <see cref="Error"/>.</param>
public sealed record ExecResult(string Stdout, string Stderr, int ExitCode, string? Error, string? Traceback, TimeSpan Duration)
{
    public string? ChildId { get; init; }

    /// <summary>Bytes of stdout the guest dropped to keep the reply within the host's limit.</summary>
    public long StdoutBytesDropped { get; init; }

    /// <summary>Bytes of stderr the guest dropped to keep the reply within the host's limit.</summary>
    public long StderrBytesDropped { get; init; }

    public bool Succeeded => Error is null && ExitCode == 0;
}

/// <summary>The outcome of <c>eval</c> in the agent's persistent interpreter (or the warm-up bridge).</summary>
/// <param name="Result">The value's <c>repr()</c> (Python eval); null for bridge replies and errors.</param>
/// <param name="ResultJson">The value as raw JSON text (our agent's <c>forkd_value</c>, or the Node bridge's <c>result_json</c>), NaN/±Infinity as forkd's string sentinels; null when not JSON-serialisable.</param>
/// <param name="Error"><c>ExcType: message</c> when the code raised.</param>
/// <param name="Traceback">The guest's Python traceback, limited to the evaluated code's frames.</param>
/// <param name="Stack">The warm-up process's stack (Node) for bridge errors.</param>
public sealed record EvalResult(string? Result, string? ResultJson, string? Error, string? Traceback, string? Stack, int ExitCode, TimeSpan Duration)
{
    public string? ChildId { get; init; }

    public bool Succeeded => Error is null;
}
