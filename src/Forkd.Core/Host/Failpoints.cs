namespace Forkd.Core.Host;

/// <summary>
/// Named crash points for the crash-consistency tests: when <c>FORKD_FAILPOINTS</c> (a comma list) names a point,
/// the process kills itself with SIGKILL there, exactly as a power cut or <c>kill -9</c> would. Unset in normal
/// use, so a point costs one cached lookup.
/// </summary>
public static class Failpoints
{
    public const string Variable = "FORKD_FAILPOINTS";

    private static readonly HashSet<string> Armed = new(
        (Environment.GetEnvironmentVariable(Variable) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        StringComparer.Ordinal);

    public static void Hit(string name)
    {
        if (Armed.Count > 0 && Armed.Contains(name))
        {
            _ = Tmds.Linux.LibC.kill(Environment.ProcessId, Tmds.Linux.LibC.SIGKILL);
            Thread.Sleep(Timeout.Infinite);
        }
    }
}
