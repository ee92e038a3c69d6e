using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Host;

/// <summary>Host checks against laid-out /sys and /proc trees, for the host kinds this machine is not (cgroup v2, hugetlb reserved).</summary>
public sealed class HostChecksReadTheHostFilesTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "forkd-hosttest-" + Guid.NewGuid().ToString("N")[..8]);

    private HostChecks Checks => new(new ForkdPaths(Path.Combine(_root, "data"), _root), null, Path.Combine(_root, "sys"), Path.Combine(_root, "proc"));

    private void Write(string relative, string text)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void Cgroup_v2_with_the_memory_controller_passes()
    {
        Write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");

        var r = Checks.Cgroups();

        Assert.Equal(HostCheckStatus.Pass, r.Status);
        Assert.Contains("cgroup v2", r.Observed, StringComparison.Ordinal);
    }

    [Fact]
    public void Cgroup_v2_without_the_memory_controller_fails_with_a_fix()
    {
        Write("sys/fs/cgroup/cgroup.controllers", "cpu io pids\n");

        var r = Checks.Cgroups();

        Assert.Equal(HostCheckStatus.Fail, r.Status);
        Assert.NotNull(r.Fix);
    }

    [Fact]
    public void Cgroup_v1_memory_controller_passes_and_no_cgroups_fails()
    {
        Directory.CreateDirectory(Path.Combine(_root, "sys/fs/cgroup"));
        Assert.Equal(HostCheckStatus.Fail, Checks.Cgroups().Status);

        Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
        var r = Checks.Cgroups();

        Assert.Equal(HostCheckStatus.Pass, r.Status);
        Assert.Contains("cgroup v1", r.Observed, StringComparison.Ordinal);
    }

    [Fact]
    public void Reserved_hugetlb_pages_are_a_warning_with_their_size()
    {
        Write("proc/meminfo", "MemTotal: 24684096 kB\nMemAvailable: 20000000 kB\nHugePages_Total:     512\nHugepagesize:       2048 kB\n");
        Write("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");

        var r = Checks.HugePages();

        Assert.Equal(HostCheckStatus.Warn, r.Status);
        Assert.Contains("1024 MiB", r.Observed, StringComparison.Ordinal);
        Assert.Contains("madvise", r.Observed, StringComparison.Ordinal);
    }

    [Fact]
    public void Low_memory_fails()
    {
        Write("proc/meminfo", "MemAvailable: 300000 kB\n");

        Assert.Equal(HostCheckStatus.Fail, Checks.Memory().Status);
    }

    [Fact]
    public void Ksm_off_is_a_warning_and_on_passes()
    {
        Write("sys/kernel/mm/ksm/run", "0\n");
        Assert.Equal(HostCheckStatus.Warn, Checks.Ksm().Status);

        Write("sys/kernel/mm/ksm/run", "1\n");
        Assert.Equal(HostCheckStatus.Pass, Checks.Ksm().Status);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
