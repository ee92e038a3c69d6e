using System.Diagnostics;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Xunit;

namespace Forkd.Core.Tests.Engine;

public sealed class ChildRegistryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-regtest-").FullName;

    public void Dispose() => SafeDelete.Delete(_root);

    private ForkdPaths Paths => new(Path.Combine(_root, "data"), Path.Combine(_root, "tmp"));

    private string ProcRoot => Path.Combine(_root, "proc");

    private string WorkDir(string suffix) => Path.Combine(Paths.TempDirectory, $"forkd-child-py-1-{suffix}");

    /// <summary>A fake /proc entry: stat (state letter, start time), status (uid), exe link and argv.</summary>
    private void FakeProcess(int pid, char state, long startTicks, string exeName, params string[] argv)
    {
        var dir = Path.Combine(ProcRoot, pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        var fields = string.Join(' ', Enumerable.Range(4, 18).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        File.WriteAllText(Path.Combine(dir, "stat"), $"{pid} (qemu system) {state} {fields} {startTicks} 99 100");
        File.WriteAllText(Path.Combine(dir, "status"), $"Name:\tx\nUid:\t{NativeFile.EffectiveUid}\t0\t0\t0\n");
        var exe = Path.Combine(_root, "bin", exeName);
        Directory.CreateDirectory(Path.GetDirectoryName(exe)!);
        File.WriteAllText(exe, "");
        File.Delete(Path.Combine(dir, "exe"));
        File.CreateSymbolicLink(Path.Combine(dir, "exe"), exe);
        File.WriteAllText(Path.Combine(dir, "cmdline"), string.Join('\0', argv) + "\0");
    }

    private static ForkdChild Child(string tag, int pid, string workDir, int index = 1) => new()
    {
        Id = ChildRegistry.NewId(tag),
        Tag = tag,
        Index = index,
        ProcessId = pid,
        Agent = new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDir, "agent.sock")),
        WorkDirectory = workDir,
        StartedAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public void Ids_are_tag_plus_eight_hex_digits_and_unique()
    {
        var a = ChildRegistry.NewId("py");
        var b = ChildRegistry.NewId("py");
        Assert.Matches("^py-[0-9a-f]{8}$", a);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void A_saved_child_reads_back_with_every_field_and_is_running_while_its_vmm_lives()
    {
        var registry = new ChildRegistry(Paths, ProcRoot);
        var workDir = WorkDir("0000aaaa");
        var child = Child("py", 4242, workDir) with { RestoreTime = 12.5, CgroupPath = "/sys/fs/cgroup/x" };
        FakeProcess(4242, 'S', 777, "qemu-system-x86_64", "qemu-system-x86_64", "-name", "forkd-child-py-1-0000aaaa", "-qmp", $"unix:{workDir}/qmp.sock");
        registry.Save(child);

        var back = registry.Get(child.Id);
        Assert.NotNull(back);
        Assert.Equal(ChildState.Running, back.State);
        Assert.Equal(777, back.ProcessStartTicks);
        Assert.Equal(Path.Combine(_root, "bin", "qemu-system-x86_64"), back.Executable);
        Assert.Equal(child with { State = ChildState.Running, ProcessStartTicks = 777, Executable = back.Executable }, back);
        Assert.Equal(["py"], registry.RunningChildrenOf("py").Select(id => id[..2]));
        Assert.Empty(registry.RunningChildrenOf("other"));
        Assert.Empty(Directory.GetFiles(registry.Directory, "*.tmp"));
    }

    [Fact]
    public void A_reused_pid_running_something_else_reads_as_exited()
    {
        var registry = new ChildRegistry(Paths, ProcRoot);
        var child = Child("py", 4343, WorkDir("0000bbbb"));
        FakeProcess(4343, 'S', 5, "bash", "/usr/bin/bash", "-l"); // same pid, different program
        registry.Save(child);
        Assert.Equal(ChildState.Exited, registry.Get(child.Id)!.State);
        Assert.Empty(registry.RunningChildrenOf("py"));
    }

    [Fact]
    public void A_zombie_or_vanished_vmm_reads_as_exited()
    {
        var registry = new ChildRegistry(Paths, ProcRoot);
        var zombie = Child("py", 4444, WorkDir("0000cccc"));
        FakeProcess(4444, 'Z', 5, "qemu-system-x86_64", "qemu-system-x86_64", WorkDir("0000cccc"));
        var gone = Child("py", 4545, WorkDir("0000dddd"), 2);
        registry.Save(zombie);
        registry.Save(gone);
        Assert.All(registry.List(), c => Assert.Equal(ChildState.Exited, c.State));
        Assert.Equal(2, registry.List().Count);
    }

    private static bool WaitUntil(Func<bool> condition)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > until)
            {
                return false;
            }

            Thread.Sleep(10);
        }

        return true;
    }

    [Fact]
    public void Liveness_against_the_real_process_table()
    {
        var registry = new ChildRegistry(Paths);
        var workDir = WorkDirectories.Create(Paths, WorkDirKind.Child, "py");
        using var qemu = RealVmm.Start(workDir);
        try
        {
            Assert.True(registry.IsOurProcess(qemu.Id, workDir));
            Assert.False(registry.IsOurProcess(qemu.Id, WorkDirectories.Create(Paths, WorkDirKind.Child, "py")));
        }
        finally
        {
            qemu.Kill();
            qemu.WaitForExit();
        }

        Assert.False(ProcessControl.IsAlive(qemu.Id));
        Assert.False(registry.IsOurProcess(qemu.Id, workDir));
    }

    [Fact]
    public void Ids_that_are_not_single_file_names_are_rejected()
    {
        var registry = new ChildRegistry(Paths, ProcRoot);
        Assert.Null(registry.Get("../../etc/passwd"));
        Assert.Throws<ForkdException>(() => registry.Delete("../x"));
    }

    [Fact]
    public async Task Stopping_an_exited_child_removes_its_work_dir_and_record_without_signalling_the_reused_pid()
    {
        var registry = new ChildRegistry(Paths, ProcRoot);
        var workDir = WorkDirectories.Create(Paths, WorkDirKind.Child, "py");
        File.WriteAllText(Path.Combine(workDir, "serial.log"), "x");
        // The pid belongs to this very test process: if the stopper signalled it, the test run would die.
        var child = Child("py", Environment.ProcessId, workDir);
        registry.Save(child);
        await ChildStopper.StopAsync(registry, child);
        Assert.False(Directory.Exists(workDir));
        Assert.Null(registry.Get(child.Id));
    }
}
