using System.Diagnostics;
using Forkd.Core;
using Forkd.Core.Host;
using Xunit;

namespace Forkd.Core.Tests.Engine;

public sealed class CgroupsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-cgtest-").FullName;

    public void Dispose() => Directory.Delete(_root, true);

    [Fact]
    public void V2_is_chosen_when_the_root_has_cgroup_controllers()
    {
        File.WriteAllText(Path.Combine(_root, "cgroup.controllers"), "cpu memory");
        File.WriteAllText(Path.Combine(_root, "cgroup.subtree_control"), "");
        var cg = new Cgroups(_root);
        Assert.Equal(CgroupVersion.V2, cg.Version);
        Assert.Equal(Path.Combine(_root, "forkd", "py-1234abcd"), cg.LeafPath("py-1234abcd"));

        var leaf = cg.Place("py-1234abcd", 77, 512L * 1024 * 1024);
        Assert.Equal("536870912", File.ReadAllText(Path.Combine(leaf, "memory.max")));
        Assert.Equal("77", File.ReadAllText(Path.Combine(leaf, "cgroup.procs")));
        Assert.Equal("+memory", File.ReadAllText(Path.Combine(_root, "cgroup.subtree_control")));
    }

    [Fact]
    public void V1_is_chosen_when_only_the_memory_controller_hierarchy_exists()
    {
        Directory.CreateDirectory(Path.Combine(_root, "memory"));
        File.WriteAllText(Path.Combine(_root, "memory", "memory.limit_in_bytes"), "9223372036854771712");
        Directory.CreateDirectory(Path.Combine(_root, "unified")); // the hybrid layout of this machine
        var cg = new Cgroups(_root);
        Assert.Equal(CgroupVersion.V1, cg.Version);
        var leaf = cg.Place("py-0000ffff", 88, 64L * 1024 * 1024);
        Assert.Equal(Path.Combine(_root, "memory", "forkd", "py-0000ffff"), leaf);
        Assert.Equal("67108864", File.ReadAllText(Path.Combine(leaf, "memory.limit_in_bytes")));
        Assert.Equal("88", File.ReadAllText(Path.Combine(leaf, "cgroup.procs")));
    }

    [Fact]
    public void No_memory_controller_is_a_clear_error()
    {
        var ex = Assert.Throws<ForkdException>(() => new Cgroups(_root).LeafPath("x"));
        Assert.Equal("CgroupUnavailable", ex.ErrorId);
    }

    [SkippableFact]
    public void Real_host_cgroup_limits_a_process_and_is_removed_after_it_ends()
    {
        var cg = new Cgroups();
        Skip.If(cg.Version == CgroupVersion.None || Tmds.Linux.LibC.geteuid() != 0, "needs root and a cgroup memory controller");

        var id = "xunit-" + Environment.ProcessId;
        using var sleeper = Process.Start("sleep", "30")!;
        string? leaf = null;
        try
        {
            leaf = cg.Place(id, sleeper.Id, 32L * 1024 * 1024);
            var membership = File.ReadAllText($"/proc/{sleeper.Id}/cgroup");
            Assert.Contains($"/forkd/{id}", membership, StringComparison.Ordinal);
            var limitFile = cg.Version == CgroupVersion.V2 ? "memory.max" : "memory.limit_in_bytes";
            Assert.Equal(32L * 1024 * 1024, long.Parse(File.ReadAllText(Path.Combine(leaf, limitFile)).Trim(), System.Globalization.CultureInfo.InvariantCulture));
        }
        finally
        {
            sleeper.Kill();
            sleeper.WaitForExit();
            if (leaf is not null)
            {
                Assert.True(Cgroups.TryRemove(leaf));
                Assert.False(Directory.Exists(leaf));
            }
        }
    }
}
