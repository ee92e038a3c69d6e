using System.Globalization;
using System.Management.Automation;
using Forkd.Core.Engine;

namespace Forkd.PowerShell;

/// <summary>
/// Turns a guest-side failure into an error record, so -ErrorAction and $ErrorActionPreference react to it the
/// way they do to Invoke-Command's remote errors: non-terminating, one per child, the result as TargetObject
/// (the result object itself is still written to the output).
/// The rules: an eval fails when the code raised (Error is set). An exec fails when the agent could not run the
/// command (not found, timed out: Error is set) or the command exited with a code other than 0.
/// </summary>
public static class GuestFailure
{
    public const string EvalErrorId = "GuestEvalFailed";
    public const string ExecErrorId = "GuestExecFailed";

    public static ErrorRecord? For(ForkdEvalResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Succeeded)
        {
            return null;
        }

        var firstLine = result.Error!.Split('\n', 2)[0];
        return Record(EvalErrorId, ErrorCategory.InvalidOperation, $"child {result.ChildId}: the guest code raised {firstLine}", result,
            "The Traceback property of the TargetObject (and of the result in the output) shows where. " +
            "-NoGuestError writes only the result.");
    }

    public static ErrorRecord? For(ForkdExecResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Succeeded)
        {
            return null;
        }

        if (result.Error is not null)
        {
            return Record(ExecErrorId, ErrorCategory.InvalidOperation, $"child {result.ChildId}: the command did not run: {result.Error}", result,
                "Check the program name (it runs without a shell, found on the guest's PATH) and -TimeoutSec.");
        }

        var stderr = result.Stderr.Trim();
        var tail = stderr.Length == 0 ? "" : ": " + (stderr.Length > 200 ? "…" + stderr[^200..] : stderr);
        return Record(ExecErrorId, ErrorCategory.NotSpecified,
            string.Create(CultureInfo.InvariantCulture, $"child {result.ChildId}: the command exited with code {result.ExitCode}{tail}"), result,
            "The result (TargetObject, and in the output) has ExitCode, Stdout and Stderr. Pass -NoGuestError when the script checks ExitCode itself.");
    }

    private static ErrorRecord Record(string errorId, ErrorCategory category, string message, object result, string hint) =>
        new(new GuestFailureException(message), errorId, category, result)
        {
            ErrorDetails = new ErrorDetails(message) { RecommendedAction = hint },
        };
}

/// <summary>The exception inside a guest-failure error record: the guest's own failure, not the module's.</summary>
public sealed class GuestFailureException : Exception
{
    public GuestFailureException()
    {
    }

    public GuestFailureException(string message)
        : base(message)
    {
    }

    public GuestFailureException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
