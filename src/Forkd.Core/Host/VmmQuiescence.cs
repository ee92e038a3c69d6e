using System.Diagnostics;
using System.Globalization;

namespace Forkd.Core.Host;

/// <summary>
/// Waits until a VMM process has stopped using the CPU. A parent saved while its guest is still reacting to
/// something (the agent connection that just closed, a wake-up in flight) hands that reaction to every child,
/// which then runs it, translated afresh under TCG, the moment it resumes.
/// </summary>
public static class VmmQuiescence
{
    /// <summary>Total CPU time of all the process's threads (<c>/proc/&lt;pid&gt;/task/*/schedstat</c>), or null once it is gone.</summary>
    public static TimeSpan? CpuTime(int pid, string procRoot = "/proc")
    {
        long ns = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "task")))
            {
                var text = File.ReadAllText(Path.Combine(task, "schedstat"));
                var end = text.IndexOf(' ', StringComparison.Ordinal);
                if (end > 0 && long.TryParse(text.AsSpan(0, end), NumberStyles.None, CultureInfo.InvariantCulture, out var taskNs))
                {
                    ns += taskNs;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return TimeSpan.FromTicks(ns / 100);
    }

    /// <summary>
    /// Returns once the process used less than 2 % of a core over <paramref name="window"/>, or after
    /// <paramref name="limit"/> (a guest that never settles is saved as it is), or when the process is gone.
    /// </summary>
    public static async Task<TimeSpan> WaitAsync(int pid, TimeSpan window, TimeSpan limit, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var last = CpuTime(pid);
        while (last is not null && clock.Elapsed < limit)
        {
            await Task.Delay(window, cancellationToken).ConfigureAwait(false);
            var now = CpuTime(pid);
            if (now is null || (now.Value - last.Value) < window * 0.02)
            {
                break;
            }

            last = now;
        }

        return clock.Elapsed;
    }
}
