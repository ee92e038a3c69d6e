using System.Diagnostics;
using Forkd.Core.Host;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.Core.Tests.Host;

/// <summary>Host-side levers of a child's cost: no huge pages for VMMs, a settled parent before its save, a PIT-less machine.</summary>
public sealed class StartCostPolicyTests
{
    [Fact]
    public void A_process_started_without_huge_pages_has_them_off_and_the_engine_keeps_its_own_setting()
    {
        var ownBefore = HugePagePolicy.IsDisabledFor(Environment.ProcessId);
        using var sleeper = HugePagePolicy.StartWithoutHugePages(() => Process.Start(new ProcessStartInfo("sleep", "30")))!;
        try
        {
            Assert.True(HugePagePolicy.IsDisabledFor(sleeper.Id), "the started process still may use transparent huge pages");
            Assert.Equal(ownBefore, HugePagePolicy.IsDisabledFor(Environment.ProcessId));
        }
        finally
        {
            sleeper.Kill();
        }
    }

    [Fact]
    public void A_process_started_normally_keeps_the_system_policy()
    {
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        try
        {
            Assert.False(HugePagePolicy.IsDisabledFor(sleeper.Id));
        }
        finally
        {
            sleeper.Kill();
        }
    }

    [Fact]
    public async Task Quiescence_returns_at_once_for_an_idle_process_and_waits_out_a_busy_one()
    {
        using var idle = Process.Start(new ProcessStartInfo("sleep", "30"))!;
        using var busy = Process.Start(new ProcessStartInfo("python3", "-c \"while True: pass\""))!;
        try
        {
            var window = TimeSpan.FromMilliseconds(50);
            var limit = TimeSpan.FromSeconds(1);
            var idleWait = await VmmQuiescence.WaitAsync(idle.Id, window, limit, CancellationToken.None);
            var busyWait = await VmmQuiescence.WaitAsync(busy.Id, window, limit, CancellationToken.None);

            Assert.True(idleWait < limit, $"an idle process was waited on for {idleWait}");
            Assert.True(busyWait >= limit, $"a busy process counted as settled after {busyWait}");
            Assert.True(VmmQuiescence.CpuTime(busy.Id) > TimeSpan.Zero);
            Assert.Null(VmmQuiescence.CpuTime(int.MaxValue));
        }
        finally
        {
            idle.Kill();
            busy.Kill();
        }
    }

    [Theory]
    [InlineData(2_445_434L, true)]
    [InlineData(0L, false)]
    public void A_parent_loses_its_PIT_only_when_the_guest_gets_the_TSC_rate_instead(long tscKiloHertz, bool withoutPit)
    {
        var machine = QemuBackend.ParentMachine(tscKiloHertz);

        Assert.StartsWith("microvm,", machine);
        Assert.Equal(withoutPit, machine.Contains("pit=off", StringComparison.Ordinal));
    }
}
