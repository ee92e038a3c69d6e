using System.Globalization;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>Signals, liveness and memory facts about processes that are not our children (detached VMMs).</summary>
public static class ProcessControl
{
    /// <summary>True while <paramref name="pid"/> exists and is not a zombie.</summary>
    public static bool IsAlive(int pid, string procRoot = "/proc")
    {
        if (pid <= 0)
        {
            return false;
        }

        try
        {
            // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces and parentheses, so find the last ')'.
            var stat = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"));
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length && stat[close + 2] is not ('Z' or 'X');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The process's argv, or null when it is gone.</summary>
    public static IReadOnlyList<string>? CommandLine(int pid, string procRoot = "/proc")
    {
        try
        {
            var raw = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "cmdline"));
            return raw.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The process's start time in clock ticks since boot (field 22 of <c>/proc/&lt;pid&gt;/stat</c>), or null
    /// when it is gone. With the pid it names one process for good: a recycled pid has a later start time.
    /// </summary>
    public static long? StartTicks(int pid, string procRoot = "/proc")
    {
        if (pid <= 0)
        {
            return null;
        }

        try
        {
            var stat = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"));
            // Fields after "(comm)" start at field 3 (state); starttime is field 22, so index 19 of the rest.
            var rest = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return rest.Length > 19 && long.TryParse(rest[19], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks) ? ticks : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private const int ScClkTck = 2; // _SC_CLK_TCK (glibc, musl)

    /// <summary>When the process started (UTC, to about a second: the boot time is kept in whole seconds), or null when it is gone.</summary>
    public static DateTime? StartedUtc(int pid, string procRoot = "/proc")
    {
        if (StartTicks(pid, procRoot) is not { } ticks || BootTimeUtc(procRoot) is not { } boot)
        {
            return null;
        }

        var perSecond = sysconf(ScClkTck);
        return boot.AddSeconds(ticks / (double)(perSecond > 0 ? perSecond : 100));
    }

    /// <summary>The boot time from <c>/proc/stat</c> (<c>btime</c>, seconds since the epoch), or null.</summary>
    private static DateTime? BootTimeUtc(string procRoot)
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(procRoot, "stat")))
            {
                if (line.StartsWith("btime ", StringComparison.Ordinal) &&
                    long.TryParse(line.AsSpan(6).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
                {
                    return DateTime.UnixEpoch.AddSeconds(seconds);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>The file the process runs (<c>/proc/&lt;pid&gt;/exe</c>), or null when it is gone or hidden.</summary>
    public static string? Executable(int pid, string procRoot = "/proc")
    {
        try
        {
            var target = new FileInfo(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "exe")).LinkTarget;
            return target is null ? null : target.EndsWith(" (deleted)", StringComparison.Ordinal) ? target[..^10] : target;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The real uid of a process (<c>Uid:</c> in <c>/proc/&lt;pid&gt;/status</c>), or null.</summary>
    public static long? Uid(int pid, string procRoot = "/proc")
    {
        try
        {
            foreach (var line in File.ReadLines(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "status")))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    return parts.Length > 1 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>SIGKILLs a process and waits (up to <paramref name="timeout"/>) until it is gone or a zombie.</summary>
    public static async Task KillAndWaitAsync(int pid, TimeSpan timeout)
    {
        if (pid <= 0)
        {
            return;
        }

        _ = kill(pid, SIGKILL);
        var until = DateTime.UtcNow + timeout;
        while (IsAlive(pid) && DateTime.UtcNow < until)
        {
            await Task.Delay(10).ConfigureAwait(false);
        }
    }

    /// <summary>Sets <c>/proc/&lt;pid&gt;/oom_score_adj</c> (-1000..1000): higher dies first under memory pressure.</summary>
    public static void SetOomScoreAdj(int pid, int value)
    {
        File.WriteAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/oom_score_adj", value.ToString(CultureInfo.InvariantCulture));
    }
}
