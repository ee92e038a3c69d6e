using System.Diagnostics;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Xunit;

namespace Forkd.Core.Tests.Engine;

public sealed class OrphanParentsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-orphantest-").FullName;

    public void Dispose() => SafeDelete.Delete(_root);

    [Fact]
    public void Work_dir_and_creator_pid_are_read_from_a_qemu_command_line()
    {
        var prefix = "/tmp/forkd-parent-";
        string[] argv = ["qemu-system-x86_64", "-name", "x", "-qmp", "unix:/tmp/forkd-parent-py.v2-1234-0a1b2c3d/qmp.sock,server=on,wait=off"];
        var dir = OrphanParents.ParentWorkDirOf(argv, prefix);
        Assert.Equal("/tmp/forkd-parent-py.v2-1234-0a1b2c3d", dir);
        Assert.Equal(1234, OrphanParents.CreatorPid(dir!, prefix));
        Assert.Null(OrphanParents.ParentWorkDirOf(["qemu-system-x86_64", "-name", "forkd-child-py-1-aa"], prefix));
    }

    [Fact]
    public async Task A_parent_vmm_whose_creator_died_is_killed_and_its_work_dir_removed_but_a_live_creators_is_kept()
    {
        var paths = new ForkdPaths(Path.Combine(_root, "data"), _root);
        // A creator that has exited, and this test process as a live one.
        using var gone = Process.Start("true")!;
        gone.WaitForExit();
        var orphanDir = Directory.CreateDirectory(Path.Combine(_root, $"forkd-parent-py-{gone.Id}-0000aaaa")).FullName;
        var keptDir = Directory.CreateDirectory(Path.Combine(_root, $"forkd-parent-py-{Environment.ProcessId}-0000bbbb")).FullName;
        // Real (idle) QEMU processes naming those work dirs, and one that only calls itself QEMU (bash exec -a).
        using var orphan = RealVmm.Start(orphanDir);
        using var kept = RealVmm.Start(keptDir);
        var impostorDir = Directory.CreateDirectory(Path.Combine(_root, $"forkd-parent-py-{gone.Id}-0000cccc")).FullName;
        using var impostor = Process.Start("bash", ["-c", $"exec -a qemu-system-x86_64 /usr/bin/python3 -c 'import time; time.sleep(60)' {impostorDir}/qmp.sock"])!;
        try
        {
            await Task.Delay(500); // let exec happen
            var removed = await OrphanParents.ReapAsync(paths);
            Assert.Equal([orphanDir], removed);
            Assert.True(orphan.WaitForExit(5000));
            Assert.False(Directory.Exists(orphanDir));
            Assert.False(kept.HasExited);
            Assert.True(Directory.Exists(keptDir));
            Assert.False(impostor.HasExited);
            Assert.True(Directory.Exists(impostorDir));
        }
        finally
        {
            if (!impostor.HasExited)
            {
                impostor.Kill();
            }

            if (!kept.HasExited)
            {
                kept.Kill();
            }

            if (!orphan.HasExited)
            {
                orphan.Kill();
            }
        }
    }
}
