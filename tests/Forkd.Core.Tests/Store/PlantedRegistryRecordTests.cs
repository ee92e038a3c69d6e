using System.Diagnostics;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Tests.Engine;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>
/// Hostile child-registry records (issue 10.4): a record is data someone may have planted, so stopping
/// it must never signal a process that is not the VMM it describes, nor delete anything but a real
/// work dir of ours. Real processes throughout; the records are written by hand, as an attacker would.
/// </summary>
public sealed class PlantedRegistryRecordTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;
    private readonly List<Process> _processes = [];

    public PlantedRegistryRecordTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
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

    private Process Start(string file, params string[] args)
    {
        var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })!;
        _processes.Add(p);
        Thread.Sleep(200); // let it exec
        return p;
    }

    /// <summary>Writes children/&lt;id&gt;.json by hand; <paramref name="extra"/> is raw JSON members.</summary>
    private string Plant(int pid, string workDir, string extra = "")
    {
        var id = ChildRegistry.NewId("py");
        Directory.CreateDirectory(_paths.ChildrenDirectory);
        var json = $$"""
            { "id": "{{id}}", "tag": "py", "index": 1, "pid": {{pid}}, "agent": { "Transport": "unix", "Address": "/x" },
              "work_dir": {{System.Text.Json.JsonSerializer.Serialize(workDir)}}, "started_at": "2026-01-01T00:00:00Z" {{extra}} }
            """;
        File.WriteAllText(Path.Combine(_paths.ChildrenDirectory, id + ".json"), json);
        return id;
    }

    private async Task StopPlanted(string id)
    {
        var registry = new ChildRegistry(_paths);
        var child = registry.Get(id);
        Assert.NotNull(child);
        await ChildStopper.StopAsync(registry, child);
    }

    private string Canary()
    {
        var canary = _dir.Sub("canary", "tree");
        for (var i = 0; i < 5; i++)
        {
            File.WriteAllText(Path.Combine(canary, $"file{i}"), "precious");
        }

        return canary;
    }

    [Fact]
    public async Task A_record_with_an_empty_work_dir_kills_nothing_and_deletes_nothing()
    {
        var victim = Start("sleep", "60");
        var id = Plant(victim.Id, "");

        Assert.Equal(ChildState.Exited, new ChildRegistry(_paths).Get(id)!.State);
        await StopPlanted(id);

        Assert.False(victim.HasExited);
        Assert.True(Directory.Exists(_paths.TempDirectory));
    }

    [Fact]
    public async Task A_record_naming_an_arbitrary_tree_and_a_process_that_names_it_leaves_both_alone()
    {
        var canary = Canary();
        var victim = Start("python3", "-c", "import time; time.sleep(60)", canary); // its command line does name the tree
        var id = Plant(victim.Id, canary);

        await StopPlanted(id);

        Assert.False(victim.HasExited);
        Assert.Equal(5, Directory.GetFiles(canary).Length);
    }

    [Fact]
    public async Task A_record_whose_pid_is_not_a_vmm_executable_is_not_signalled_even_with_a_real_work_dir_name()
    {
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Child, "py");
        var victim = Start("python3", "-c", "import time; time.sleep(60)", $"unix:{workDir}/qmp.sock");
        var id = Plant(victim.Id, workDir);

        Assert.Equal(ChildState.Exited, new ChildRegistry(_paths).Get(id)!.State);
        await StopPlanted(id);

        Assert.False(victim.HasExited);
    }

    [Fact]
    public async Task A_record_of_a_real_vmm_with_a_wrong_or_missing_start_time_is_not_signalled()
    {
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Child, "py");
        var qemu = RealVmm.Start(workDir);
        _processes.Add(qemu);
        var wrongTime = Plant(qemu.Id, workDir, """, "pid_start_ticks": 1""");
        var noTime = Plant(qemu.Id, workDir);

        Assert.All(new ChildRegistry(_paths).List().Where(c => c.Id == wrongTime || c.Id == noTime), c => Assert.Equal(ChildState.Exited, c.State));
        await StopPlanted(wrongTime);
        await StopPlanted(noTime);

        Assert.False(qemu.HasExited);
        Assert.True(Directory.Exists(workDir)); // a live VMM still uses it
    }

    [Fact]
    public async Task A_record_saved_by_the_forker_for_a_real_vmm_is_running_and_stopping_it_ends_everything()
    {
        var registry = new ChildRegistry(_paths);
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Child, "py");
        var qemu = RealVmm.Start(workDir);
        _processes.Add(qemu);
        var child = new ForkdChild
        {
            Id = ChildRegistry.NewId("py"),
            Tag = "py",
            ProcessId = qemu.Id,
            Agent = new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDir, "agent.sock")),
            WorkDirectory = workDir,
        };
        registry.Save(child);

        Assert.Equal(ChildState.Running, registry.Get(child.Id)!.State);
        await ChildStopper.StopAsync(registry, child); // the forker's own copy, as Forker passes it

        Assert.True(qemu.WaitForExit(10_000));
        Assert.False(Directory.Exists(workDir));
        Assert.Null(registry.Get(child.Id));
    }

    [Fact]
    public async Task Work_dirs_that_are_links_other_users_dirs_or_outside_the_temp_root_are_not_deleted()
    {
        var canary = Canary();
        var link = Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000aaaa");
        Directory.CreateSymbolicLink(link, canary);
        var foreign = _dir.Sub("tmp", "forkd-child-py-1-0000bbbb");
        File.WriteAllText(Path.Combine(foreign, "theirs"), "x");
        HostCommand.Run("chown", ["-R", "nobody", foreign]);
        var elsewhere = _dir.Sub("elsewhere", "forkd-child-py-1-0000cccc");
        var dotted = Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000dddd", "..", "..", "canary");

        foreach (var workDir in new[] { link, foreign, elsewhere, dotted, _paths.TempDirectory + "/" })
        {
            await StopPlanted(Plant(0, workDir));
        }

        Assert.Equal(5, Directory.GetFiles(canary).Length);
        Assert.True(File.Exists(Path.Combine(foreign, "theirs")));
        Assert.True(Directory.Exists(elsewhere));
        Assert.True(Directory.Exists(_paths.TempDirectory));
    }

    [Fact]
    public async Task A_planted_cgroup_path_is_not_removed()
    {
        var empty = _dir.Sub("an-empty-dir");
        var id = Plant(0, Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000eeee"), $""", "cgroup": "{empty}" """);

        await StopPlanted(id);

        Assert.True(Directory.Exists(empty));
    }

    [Fact]
    public void A_record_file_that_is_a_link_or_names_another_id_is_not_read()
    {
        var outside = Path.Combine(_dir.Path, "outside.json");
        var real = Plant(0, Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000ffff"));
        File.Move(Path.Combine(_paths.ChildrenDirectory, real + ".json"), outside);
        File.CreateSymbolicLink(Path.Combine(_paths.ChildrenDirectory, real + ".json"), outside);
        File.Copy(outside, Path.Combine(_paths.ChildrenDirectory, "py-12345678.json"));

        var listed = new ChildRegistry(_paths).List();

        Assert.Empty(listed);
    }
}
