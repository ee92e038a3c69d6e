using System.Diagnostics;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Tests.Engine;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>
/// The stale sweep cannot be redirected (issue 10.5): a directory swapped for a symlink while it is being
/// deleted, TMPDIR reached through a symlink, and directories of another user.
/// </summary>
public sealed class StaleWorkDirSweeperHostileTests : IDisposable
{
    private static readonly string[] Probes = ["f0", "f13", "f25", "f37", "f49"];

    private readonly TempDir _dir = new();
    private readonly List<Process> _processes = [];

    public void Dispose()
    {
        foreach (var p in _processes.Where(p => !p.HasExited))
        {
            p.Kill();
            p.WaitForExit();
        }

        _dir.Dispose();
    }

    private static StaleWorkDir SweepOne(StaleWorkDirSweeper sweeper, string path)
    {
        var candidate = Assert.Single(sweeper.Find(), c => c.Path == path);
        return candidate.IsLive || candidate.Action == WorkDirAction.Refused ? candidate : sweeper.Remove(candidate);
    }

    [Fact]
    public async Task Swapping_subdirectories_for_links_to_a_canary_mid_sweep_never_deletes_the_canary()
    {
        var paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        var canary = _dir.Sub("canary");
        for (var i = 0; i < 50; i++)
        {
            File.WriteAllText(Path.Combine(canary, $"f{i}"), "keep"); // the same names as the work dir's files
        }

        for (var attempt = 0; attempt < 10; attempt++)
        {
            var dead = WorkDirectories.Create(paths, WorkDirKind.Fork, "race");
            var subdirs = Enumerable.Range(0, 6).Select(i => Path.Combine(dead, $"d{i}")).ToList();
            foreach (var sub in subdirs)
            {
                Directory.CreateDirectory(sub);
                for (var f = 0; f < 50; f++)
                {
                    File.WriteAllText(Path.Combine(sub, $"f{f}"), "x");
                }
            }

            var sweeper = new StaleWorkDirSweeper(paths);
            var candidate = sweeper.Find().Single(c => c.Path == dead);
            using var stop = new CancellationTokenSource();
            var racer = Task.Run(() =>
            {
                // As soon as the sweep has started emptying a subdirectory, rename it away and put a link to the
                // canary (which has the same file names) in its place; keep doing it for every subdirectory.
                var n = 0;
                while (!stop.IsCancellationRequested)
                {
                    var sub = subdirs[n++ % subdirs.Count];
                    try
                    {
                        // Only stat calls: an open handle of ours inside the dir would make the sweep keep it live.
                        if (new DirectoryInfo(sub) is { Exists: true, LinkTarget: null } &&
                            Probes.Any(f => !File.Exists(Path.Combine(sub, f))))
                        {
                            Directory.Move(sub, sub + $".moved{n}");
                            Directory.CreateSymbolicLink(sub, canary);
                        }
                    }
                    catch (IOException)
                    {
                    }
                    catch (UnauthorizedAccessException)
                    {
                    }
                }
            });

            var result = sweeper.Remove(candidate);
            stop.Cancel();
            await racer;

            Assert.Equal(50, Directory.GetFiles(canary).Length);
            Assert.True(result.Action is WorkDirAction.Removed or WorkDirAction.Failed, $"{result.Action}: {result.Reason}");
            SafeDelete.Delete(dead);
        }

        Assert.All(Directory.GetFiles(canary), f => Assert.Equal("keep", File.ReadAllText(f)));
    }

    [Fact]
    public void Through_a_symlinked_TMPDIR_a_dir_held_as_a_process_cwd_is_kept_live()
    {
        var realTmp = _dir.Sub("real-tmp");
        var linkTmp = Path.Combine(_dir.Path, "tmp-link");
        Directory.CreateSymbolicLink(linkTmp, realTmp);
        var paths = new ForkdPaths(_dir.Sub("data"), linkTmp);
        var live = WorkDirectories.Create(paths, WorkDirKind.Child, "cwd");
        var holder = Process.Start(new ProcessStartInfo("sleep", ["60"]) { WorkingDirectory = live })!;
        _processes.Add(holder);
        Thread.Sleep(200);

        var result = SweepOne(new StaleWorkDirSweeper(paths), live);

        Assert.Equal(WorkDirAction.KeptLive, result.Action);
        Assert.True(Directory.Exists(live));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Through_a_symlinked_TMPDIR_a_dir_with_a_bound_socket_is_kept_live(bool bindThroughTheLink)
    {
        var realTmp = _dir.Sub("real-tmp");
        var linkTmp = Path.Combine(_dir.Path, "tmp-link");
        Directory.CreateSymbolicLink(linkTmp, realTmp);
        var paths = new ForkdPaths(_dir.Sub("data"), linkTmp);
        var live = WorkDirectories.Create(paths, WorkDirKind.Child, "sock");
        var sock = Path.Combine(bindThroughTheLink ? linkTmp : realTmp, Path.GetFileName(live), "agent.sock");
        var script = $"import socket,time; s=socket.socket(socket.AF_UNIX); s.bind('{sock}'); s.listen(1); print('ready', flush=True); time.sleep(60)";
        var holder = Process.Start(new ProcessStartInfo("python3", ["-c", script]) { RedirectStandardOutput = true })!;
        _processes.Add(holder);
        Assert.Equal("ready", holder.StandardOutput.ReadLine());

        var result = SweepOne(new StaleWorkDirSweeper(paths), live);

        Assert.Equal(WorkDirAction.KeptLive, result.Action);
        Assert.True(File.Exists(sock) || Path.Exists(sock));
    }

    [Fact]
    public void A_work_dir_owned_by_another_user_is_left_alone()
    {
        var paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        var theirs = _dir.Sub("tmp", "forkd-fork-theirs-1-0000aaaa");
        File.WriteAllText(Path.Combine(theirs, "their-file"), "x");
        HostCommand.Run("chown", ["-R", "nobody", theirs]);

        var result = SweepOne(new StaleWorkDirSweeper(paths), theirs);

        Assert.Equal(WorkDirAction.Refused, result.Action);
        Assert.Contains("uid", result.Reason, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(theirs, "their-file")));
        // Asked directly (as -WhatIf:$false with a forged candidate would), it still refuses.
        Assert.Equal(WorkDirAction.Refused, new StaleWorkDirSweeper(paths).Remove(result with { Action = WorkDirAction.WouldRemove }).Action);
        Assert.True(Directory.Exists(theirs));
    }

    [Fact]
    public void A_staging_dir_of_another_user_is_left_alone()
    {
        var paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        var theirs = _dir.Sub("data", "staging", "forkd-unpack-theirs-1-0000bbbb");
        HostCommand.Run("chown", ["nobody", theirs]);

        var result = SweepOne(new StaleWorkDirSweeper(paths), theirs);

        Assert.Equal(WorkDirAction.Refused, result.Action);
        Assert.True(Directory.Exists(theirs));
    }

    [Fact]
    public void An_orphaned_vmm_holding_a_child_work_dir_is_stopped_and_the_dir_removed()
    {
        var paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        var memory = Path.Combine(_dir.Sub("data", "snapshots", "py"), "memory.bin");
        File.WriteAllText(memory, "");
        var workDir = _dir.Sub("tmp", $"forkd-child-py-{DeadPid()}-0000cccc");
        var qemu = RealVmm.Start(workDir, "-L", Path.GetDirectoryName(memory)!);
        _processes.Add(qemu);

        var result = SweepOne(new StaleWorkDirSweeper(paths), workDir);

        Assert.Equal(WorkDirAction.Removed, result.Action);
        Assert.True(qemu.WaitForExit(10_000));
        Assert.False(Directory.Exists(workDir));
    }

    internal static int DeadPid()
    {
        using var gone = Process.Start("true")!;
        gone.WaitForExit();
        return gone.Id;
    }
}
