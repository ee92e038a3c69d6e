using System.Diagnostics;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Tests;

public sealed class StaleWorkDirSweeperTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;

    public StaleWorkDirSweeperTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
    }

    public void Dispose() => _dir.Dispose();

    private StaleWorkDir Sweep(string path)
    {
        var sweeper = new StaleWorkDirSweeper(_paths);
        var candidate = Assert.Single(sweeper.Find(), c => c.Path == path);
        return candidate.IsLive ? candidate : sweeper.Remove(candidate);
    }

    [Fact]
    public void Created_work_dirs_are_found_by_the_sweep_with_their_kind()
    {
        var fork = WorkDirectories.Create(_paths, WorkDirKind.Fork, "py");
        var unpack = WorkDirectories.Create(_paths, WorkDirKind.Unpack, "py");

        var found = new StaleWorkDirSweeper(_paths).Find();

        Assert.Contains(found, c => c.Path == fork && c.Kind == WorkDirKind.Fork);
        Assert.Contains(found, c => c.Path == unpack && c.Kind == WorkDirKind.Unpack);
        Assert.StartsWith(_paths.TempDirectory, fork, StringComparison.Ordinal);
        Assert.StartsWith(_paths.StagingDirectory, unpack, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_kind_has_exactly_one_prefix()
    {
        foreach (var kind in Enum.GetValues<WorkDirKind>())
        {
            Assert.Single(WorkDirectories.Prefixes, p => p.Kind == kind);
        }

        Assert.Equal(WorkDirectories.Prefixes.Count, WorkDirectories.Prefixes.Select(p => p.Prefix).Distinct().Count());
    }

    [Fact]
    public void Dead_dir_is_removed()
    {
        var dead = WorkDirectories.Create(_paths, WorkDirKind.Fork, "dead");
        File.WriteAllText(Path.Combine(dead, "child-1.console"), "boot log");

        var result = Sweep(dead);

        Assert.Equal(WorkDirAction.Removed, result.Action);
        Assert.False(Directory.Exists(dead));
    }

    [Fact]
    public void Dir_with_a_file_held_open_by_another_process_is_kept()
    {
        var live = WorkDirectories.Create(_paths, WorkDirKind.Parent, "live");
        var log = Path.Combine(live, "console.log");
        File.WriteAllText(log, "");
        using var holder = Process.Start(new ProcessStartInfo("bash", ["-c", $"exec 3>>'{log}'; echo ready; exec sleep 60"])
        {
            RedirectStandardOutput = true,
        })!;
        try
        {
            Assert.Equal("ready", holder.StandardOutput.ReadLine());

            var result = Sweep(live);

            Assert.True(result.IsLive);
            Assert.Equal(WorkDirAction.KeptLive, result.Action);
            Assert.Contains(holder.Id, result.HolderProcessIds);
            Assert.True(File.Exists(log));
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }

        Assert.Equal(WorkDirAction.Removed, Sweep(live).Action);
    }

    [Fact]
    public void Dir_with_a_listening_unix_socket_is_kept()
    {
        var live = WorkDirectories.Create(_paths, WorkDirKind.Child, "sock");
        var sock = Path.Combine(live, "qmp.sock");
        var script = $"import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind('{sock}'); s.listen(1); print('ready', flush=True); time.sleep(60)";
        using var holder = Process.Start(new ProcessStartInfo("python3", ["-c", script]) { RedirectStandardOutput = true })!;
        try
        {
            Assert.Equal("ready", holder.StandardOutput.ReadLine());
            var result = Sweep(live);
            Assert.Equal(WorkDirAction.KeptLive, result.Action);
            Assert.Contains(holder.Id, result.HolderProcessIds);
        }
        finally
        {
            holder.Kill();
            holder.WaitForExit();
        }
    }

    [Fact]
    public void Symlinks_are_never_followed_out_of_the_root()
    {
        var outside = _dir.Sub("precious");
        var precious = Path.Combine(outside, "keep.txt");
        File.WriteAllText(precious, "do not delete");

        // A link planted inside a dead work dir, and a work-dir-named link pointing outside.
        var dead = WorkDirectories.Create(_paths, WorkDirKind.Pull, "x");
        File.CreateSymbolicLink(Path.Combine(dead, "escape"), outside);
        var linkCandidate = Path.Combine(_paths.TempDirectory, "forkd-fork-planted");
        Directory.CreateSymbolicLink(linkCandidate, outside);

        Assert.Equal(WorkDirAction.Removed, Sweep(dead).Action);
        var linkResult = Sweep(linkCandidate);

        Assert.True(linkResult.IsSymlink);
        Assert.Equal(WorkDirAction.Removed, linkResult.Action);
        Assert.False(Path.Exists(linkCandidate));
        Assert.True(File.Exists(precious));
        Assert.Equal("do not delete", File.ReadAllText(precious));
    }

    [Fact]
    public void Names_outside_the_prefix_table_are_not_candidates()
    {
        _dir.Sub("tmp", "forkd-daemon-x");
        _dir.Sub("tmp", "forkd-");
        _dir.Sub("tmp", "other");

        Assert.Empty(new StaleWorkDirSweeper(_paths).Find());
    }

    [Fact]
    public void Remove_refuses_a_path_outside_the_roots_even_if_asked()
    {
        var elsewhere = _dir.Sub("elsewhere", "forkd-fork-x");
        var forged = new StaleWorkDir { Path = elsewhere, Kind = WorkDirKind.Fork };

        var result = new StaleWorkDirSweeper(_paths).Remove(forged);

        Assert.Equal(WorkDirAction.Refused, result.Action);
        Assert.True(Directory.Exists(elsewhere));
    }

    [Fact]
    public void Unreadable_process_table_counts_everything_as_live()
    {
        var dir = WorkDirectories.Create(_paths, WorkDirKind.Fork, "x");
        var sweeper = new StaleWorkDirSweeper(_paths, new ProcessScanner(Path.Combine(_dir.Path, "no-proc")));

        var candidate = Assert.Single(sweeper.Find());

        Assert.True(candidate.IsLive);
        Assert.Equal(WorkDirAction.KeptLive, sweeper.Remove(candidate).Action);
        Assert.True(Directory.Exists(dir));
    }

    [Fact]
    public void A_dir_whose_creator_still_runs_is_kept_though_nothing_in_it_is_open()
    {
        // Another process's fork between creating its work dir and starting its VMM: nothing inside is open yet.
        using var creator = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            var dir = _dir.Sub("tmp", $"forkd-fork-py-{creator.Id}-0000abcd");
            File.WriteAllText(Path.Combine(dir, "config.json"), "{}");

            var result = Sweep(dir);

            Assert.Equal(WorkDirAction.KeptLive, result.Action);
            Assert.Contains($"creator, pid {creator.Id}", result.Reason, StringComparison.Ordinal);
            Assert.True(Directory.Exists(dir));
        }
        finally
        {
            creator.Kill();
            creator.WaitForExit();
        }
    }

    [Fact]
    public void A_recycled_creator_pid_does_not_keep_an_old_dir()
    {
        // The pid in the name now belongs to a process that started after the dir was last written.
        using var stranger = Process.Start(new ProcessStartInfo("sleep", "60"))!;
        try
        {
            var dir = _dir.Sub("tmp", $"forkd-fork-py-{stranger.Id}-0000dcba");
            Directory.SetLastWriteTimeUtc(dir, DateTime.UtcNow.AddHours(-1));

            var result = Sweep(dir);

            Assert.Equal(WorkDirAction.Removed, result.Action);
            Assert.False(Directory.Exists(dir));
        }
        finally
        {
            stranger.Kill();
            stranger.WaitForExit();
        }
    }
}
