using System.Diagnostics;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Tests.Engine;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>
/// A crash of the host side must not orphan VMMs (issue 10.6): a VMM of ours that no record knows is listed
/// as Orphaned and can be stopped; temp files of dead writers do not stay. Real, idle QEMU processes.
/// </summary>
public sealed class ChildRegistryOrphanTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;
    private readonly List<Process> _processes = [];
    private readonly string _snapshot;

    public ChildRegistryOrphanTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        _snapshot = _dir.Sub("data", "snapshots", "py");
    }

    public void Dispose()
    {
        foreach (var p in _processes.Where(p => !p.HasExited))
        {
            p.Kill();
            p.WaitForExit();
        }

        _dir.Dispose();
    }

    private Process Vmm(string workDir, string? dataPath = null)
    {
        var qemu = RealVmm.Start(workDir, "-L", dataPath ?? _snapshot);
        _processes.Add(qemu);
        return qemu;
    }

    private string WorkDir(int creator, string suffix) => _dir.Sub("tmp", $"forkd-child-py-{creator}-{suffix}");

    [Fact]
    public async Task A_vmm_without_a_record_whose_forker_died_is_listed_orphaned_and_stop_ends_it()
    {
        var workDir = WorkDir(StaleWorkDirSweeperHostileTests.DeadPid(), "0000aaaa");
        var qemu = Vmm(workDir);
        var registry = new ChildRegistry(_paths);

        var orphan = Assert.Single(registry.List());
        Assert.Equal("Orphaned", orphan.State.ToString());
        Assert.Equal(qemu.Id, orphan.ProcessId);
        Assert.Equal("py", orphan.Tag);
        Assert.Equal(workDir, orphan.WorkDirectory);
        var byId = registry.Get(orphan.Id);
        Assert.NotNull(byId);
        Assert.Contains(orphan.Id, registry.RunningChildrenOf("py")); // its snapshot is in use

        await ChildStopper.StopAsync(registry, byId);

        Assert.True(qemu.WaitForExit(10_000));
        Assert.False(Directory.Exists(workDir));
        Assert.Empty(registry.List());
    }

    [Fact]
    public void A_vmm_whose_forker_still_runs_is_not_an_orphan_yet()
    {
        Vmm(WorkDir(Environment.ProcessId, "0000bbbb")); // this test process is the "forker", alive

        Assert.Empty(new ChildRegistry(_paths).List());
    }

    [Fact]
    public void A_vmm_of_another_data_dir_or_temp_root_is_not_ours()
    {
        Vmm(WorkDir(StaleWorkDirSweeperHostileTests.DeadPid(), "0000cccc"), _dir.Sub("other-data", "snapshots", "py"));
        Vmm(_dir.Sub("other-tmp", $"forkd-child-py-{StaleWorkDirSweeperHostileTests.DeadPid()}-0000dddd"));

        Assert.Empty(new ChildRegistry(_paths).List());
    }

    [Fact]
    public void A_process_that_only_looks_like_a_vmm_is_not_listed()
    {
        var workDir = WorkDir(StaleWorkDirSweeperHostileTests.DeadPid(), "0000eeee");
        var fake = Process.Start("bash", ["-c", $"exec -a qemu-system-x86_64 python3 -c 'import time; time.sleep(60)' unix:{workDir}/qmp.sock {_snapshot}"])!;
        _processes.Add(fake);
        Thread.Sleep(300);

        Assert.Empty(new ChildRegistry(_paths).List());
    }

    [Fact]
    public void A_recorded_vmm_is_listed_once_as_running_not_also_as_an_orphan()
    {
        var registry = new ChildRegistry(_paths);
        var workDir = WorkDir(StaleWorkDirSweeperHostileTests.DeadPid(), "0000ffff");
        var qemu = Vmm(workDir);
        registry.Save(new ForkdChild
        {
            Id = ChildRegistry.NewId("py"),
            Tag = "py",
            ProcessId = qemu.Id,
            Agent = new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDir, "agent.sock")),
            WorkDirectory = workDir,
        });

        var child = Assert.Single(registry.List());
        Assert.Equal(ChildState.Running, child.State);
    }

    [Fact]
    public void Temp_files_of_dead_writers_are_removed_and_a_live_writers_is_kept()
    {
        Directory.CreateDirectory(_paths.ChildrenDirectory);
        var dead = Path.Combine(_paths.ChildrenDirectory, $"py-00000001.json.{StaleWorkDirSweeperHostileTests.DeadPid()}-0a0b0c0d.tmp");
        var legacy = Path.Combine(_paths.ChildrenDirectory, "py-00000002.json.tmp");
        var live = Path.Combine(_paths.ChildrenDirectory, $"py-00000003.json.{Environment.ProcessId}-0a0b0c0d.tmp");
        foreach (var file in new[] { dead, legacy, live })
        {
            File.WriteAllText(file, "");
        }

        File.SetLastWriteTimeUtc(legacy, DateTime.UtcNow.AddHours(-1));

        _ = new ChildRegistry(_paths).List();

        Assert.False(File.Exists(dead));
        Assert.False(File.Exists(legacy));
        Assert.True(File.Exists(live));
    }
}
