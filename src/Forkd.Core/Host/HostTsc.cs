using System.Globalization;
using System.Text.RegularExpressions;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// The host's TSC frequency. Under TCG the guest TSC ticks at the host's rate, and a guest that
/// must calibrate it against the PIT stalls when the host is busy (ENVIRONMENT.md), so the engine
/// passes <c>tsc_early_khz=&lt;this&gt; tsc=reliable</c> on the kernel command line.
/// </summary>
public static partial class HostTsc
{
    /// <summary>
    /// The TSC rate in kHz, from the most exact source available: sysfs <c>tsc_freq_khz</c>, the
    /// kernel log's <c>tsc: Refined TSC clocksource calibration</c> / <c>tsc: Detected … MHz</c>
    /// line, then <c>cpu MHz</c> in /proc/cpuinfo. Null when none can be read.
    /// </summary>
    public static long? KiloHertz()
    {
        return FromSysfs() ?? FromKernelLog() ?? FromCpuInfo(TryRead("/proc/cpuinfo"));
    }

    private static long? FromSysfs() =>
        long.TryParse(TryRead("/sys/devices/system/cpu/cpu0/tsc_freq_khz")?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var khz) && khz > 0
            ? khz
            : null;

    /// <summary>Reads the kernel log through /dev/kmsg (non-blocking: EAGAIN ends it); the early lines are usually still in the ring buffer.</summary>
    private static unsafe long? FromKernelLog()
    {
        var path = "/dev/kmsg\0"u8;
        int fd;
        fixed (byte* p = path)
        {
            fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        }

        if (fd < 0)
        {
            return null; // not root
        }

        try
        {
            long? found = null;
            var buffer = new byte[8192];
            for (var records = 0; records < 100_000; records++)
            {
                long n;
                fixed (byte* b = buffer)
                {
                    n = read(fd, b, buffer.Length);
                }

                if (n < 0 && errno == EPIPE)
                {
                    continue; // a record was overwritten while we read; go on with the next
                }

                if (n <= 0)
                {
                    break;
                }

                var line = System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
                if (FromKernelLogLine(line) is { } value)
                {
                    found = value;
                    if (line.Contains("Refined", StringComparison.Ordinal))
                    {
                        break;
                    }
                }
            }

            return found;
        }
        finally
        {
            _ = close(fd);
        }
    }

    /// <summary>Parses <c>tsc: Detected 2445.434 MHz processor</c> or <c>tsc: Refined TSC clocksource calibration: 2445.432 MHz</c>.</summary>
    public static long? FromKernelLogLine(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var m = KernelLogPattern().Match(line);
        return m.Success ? MhzToKhz(m.Groups["mhz"].Value) : null;
    }

    /// <summary>The first <c>cpu MHz</c> line of /proc/cpuinfo, in kHz.</summary>
    public static long? FromCpuInfo(string? cpuinfo)
    {
        if (cpuinfo is null)
        {
            return null;
        }

        var m = CpuInfoPattern().Match(cpuinfo);
        return m.Success ? MhzToKhz(m.Groups["mhz"].Value) : null;
    }

    private static long? MhzToKhz(string mhz) =>
        decimal.TryParse(mhz, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) && value > 0
            ? (long)Math.Round(value * 1000m)
            : null;

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [GeneratedRegex(@"tsc: (?:Detected|Refined TSC clocksource calibration:) (?<mhz>[0-9]+(?:\.[0-9]+)?) MHz")]
    private static partial Regex KernelLogPattern();

    [GeneratedRegex(@"^cpu MHz\s*:\s*(?<mhz>[0-9]+(?:\.[0-9]+)?)", RegexOptions.Multiline)]
    private static partial Regex CpuInfoPattern();
}
