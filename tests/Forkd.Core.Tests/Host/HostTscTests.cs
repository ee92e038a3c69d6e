using Forkd.Core.Host;
using Xunit;

namespace Forkd.Core.Tests.Guest;

public sealed class HostTscTests
{
    [Theory]
    [InlineData("[    0.000072] tsc: Detected 2445.434 MHz processor", 2445434L)]
    [InlineData("6,123,456,-;tsc: Refined TSC clocksource calibration: 2299.998 MHz", 2299998L)]
    [InlineData("clocksource: tsc: mask: 0xffffffffffffffff", null)]
    public void Kernel_log_lines_give_kHz(string line, long? expected) =>
        Assert.Equal(expected, HostTsc.FromKernelLogLine(line));

    [Fact]
    public void Cpuinfo_gives_the_first_cpu_MHz_in_kHz() =>
        Assert.Equal(2445434L, HostTsc.FromCpuInfo("processor\t: 0\ncpu MHz\t\t: 2445.434\ncpu MHz\t\t: 1200.000\n"));

    [Fact]
    public void This_host_reports_a_rate_close_to_cpuinfo()
    {
        // Every x86 Linux host this project runs on has a 'cpu MHz' line; the TSC source may be more exact.
        var cpuinfo = HostTsc.FromCpuInfo(File.ReadAllText("/proc/cpuinfo"));

        var khz = HostTsc.KiloHertz();

        Assert.NotNull(cpuinfo);
        Assert.NotNull(khz);
        Assert.InRange(khz!.Value, cpuinfo!.Value * 0.5, cpuinfo.Value * 2.0);
    }
}
