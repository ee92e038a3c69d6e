using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>
/// The sweep never deletes the only complete copy of a snapshot (issue 10.2): a staging dir left by a crash
/// between the renames of a replace or remove is restored under its tag, or kept; never deleted.
/// </summary>
public sealed class StaleWorkDirSweeperSnapshotTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;

    public StaleWorkDirSweeperSnapshotTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
    }

    public void Dispose() => _dir.Dispose();

    private static string WriteSnapshot(string dir, string marker, bool complete = true)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, SnapshotFiles.Metadata), """{ "vmstate": "vmstate", "memory": "memory.bin", "backend": "qemu", "memory_mib": 256 }""");
        File.WriteAllText(Path.Combine(dir, SnapshotFiles.VmState), marker);
        if (complete)
        {
            File.WriteAllText(Path.Combine(dir, SnapshotFiles.Memory), "memory of " + marker);
        }

        return dir;
    }

    private string Staging(string name) => Path.Combine(_paths.StagingDirectory, name);

    private string Sweep(string path)
    {
        var sweeper = new StaleWorkDirSweeper(_paths);
        var candidate = Assert.Single(sweeper.Find(), c => c.Path == path);
        var result = candidate.IsLive || candidate.Action == WorkDirAction.Refused ? candidate : sweeper.Remove(candidate);
        return result.Action.ToString();
    }

    private string TagVmState(string tag = "py") => File.ReadAllText(Path.Combine(_paths.SnapshotDirectory(tag), SnapshotFiles.VmState));

    [Fact]
    public void A_replaced_snapshot_moved_into_a_remove_dir_with_the_tag_missing_is_restored()
    {
        var remove = Staging($"forkd-remove-py-{StaleWorkDirSweeperHostileTests.DeadPid()}-0000aaaa");
        WriteSnapshot(Path.Combine(remove, "snapshot"), "old");

        Assert.Equal("Restored", Sweep(remove));
        Assert.Equal("old", TagVmState());
        Assert.False(Directory.Exists(remove));
    }

    [Fact]
    public void A_remove_dir_that_is_itself_the_snapshot_is_restored()
    {
        var remove = WriteSnapshot(Staging("forkd-remove-my-tag.v2-4242"), "removed mid-way"); // SnapshotStore.Remove's name

        Assert.Equal("Restored", Sweep(remove));
        Assert.Equal("removed mid-way", TagVmState("my-tag.v2"));
    }

    [Fact]
    public void A_new_snapshot_left_in_its_staging_dir_with_the_tag_missing_is_restored()
    {
        var staging = WriteSnapshot(Staging("forkd-snapshot-py-4194305-0000bbbb"), "new");

        Assert.Equal("Restored", Sweep(staging));
        Assert.Equal("new", TagVmState());
    }

    [Fact]
    public void A_never_installed_import_is_deleted_its_files_were_never_verified()
    {
        // An unpack dir is not a copy of a snapshot: its files are unverified until the install (a killed import
        // leaves every name present with a half-written memory.bin). The pack is the source: import it again.
        var unpack = WriteSnapshot(Staging("forkd-unpack-py-4194305-0000cccc"), "imported");

        Assert.Equal("Removed", Sweep(unpack));
        Assert.False(Directory.Exists(unpack));
    }

    [Fact]
    public void A_staging_copy_is_deleted_once_the_tag_has_its_own_complete_copy()
    {
        WriteSnapshot(_paths.SnapshotDirectory("py"), "current");
        var remove = Staging("forkd-remove-py-4194305-0000dddd");
        WriteSnapshot(Path.Combine(remove, "snapshot"), "old");

        Assert.Equal("Removed", Sweep(remove));
        Assert.Equal("current", TagVmState());
    }

    [Fact]
    public void A_complete_staging_copy_is_kept_while_the_tag_dir_is_damaged()
    {
        WriteSnapshot(_paths.SnapshotDirectory("py"), "damaged", complete: false);
        var remove = WriteSnapshot(Staging("forkd-remove-py-4194305-0000eeee"), "good");

        Assert.Equal("Refused", Sweep(remove));
        Assert.True(File.Exists(Path.Combine(remove, SnapshotFiles.Memory)));
    }

    [Fact]
    public void An_incomplete_staging_dir_is_deleted()
    {
        var staging = WriteSnapshot(Staging("forkd-snapshot-py-4194305-0000ffff"), "half", complete: false);

        Assert.Equal("Removed", Sweep(staging));
        Assert.False(Directory.Exists(_paths.SnapshotDirectory("py")));
    }

    [Fact]
    public void While_the_tag_is_locked_the_only_copy_is_kept()
    {
        var remove = WriteSnapshot(Staging("forkd-remove-py-4194305-00001111"), "old");
        using (TagLock.Acquire(_paths, "py", "Import-ForkdPack"))
        {
            Assert.Equal("KeptLive", Sweep(remove));
        }

        Assert.True(File.Exists(Path.Combine(remove, SnapshotFiles.Memory)));
    }

    [Fact]
    public void A_crash_between_the_two_renames_of_a_forced_import_loses_neither_copy_to_the_sweep()
    {
        // Import-ForkdPack -Force killed after moving the old copy aside and before moving the new one in.
        WriteSnapshot(Path.Combine(Staging("forkd-remove-py-4194305-00002222"), "snapshot"), "old");
        WriteSnapshot(Staging("forkd-unpack-py-4194305-00003333"), "new");

        var sweeper = new StaleWorkDirSweeper(_paths);
        foreach (var candidate in sweeper.Find())
        {
            sweeper.Remove(candidate);
        }

        Assert.True(new SnapshotStore(_paths).Get("py").IsComplete);
        Assert.Equal("old", TagVmState());
    }
}
