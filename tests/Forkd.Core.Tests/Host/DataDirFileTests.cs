using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Host;

/// <summary>
/// Data-dir files are opened without following links (issue 10.4): a symlink planted at a lock owner
/// note, a registry record or snapshot.json never makes forkd write or read its target; the data dir
/// and every work dir are private (0700).
/// </summary>
public sealed class DataDirFileTests : IDisposable
{
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
                                              UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;

    public DataDirFileTests()
    {
        _paths = new ForkdPaths(Path.Combine(_dir.Path, "data"), _dir.Sub("tmp"));
    }

    public void Dispose() => _dir.Dispose();

    private string Target(string name = "target.txt")
    {
        var target = Path.Combine(_dir.Sub("outside"), name);
        File.WriteAllText(target, "original");
        return target;
    }

    [Fact]
    public void A_link_at_the_lock_owner_note_is_replaced_not_written_through()
    {
        var target = Target();
        Directory.CreateDirectory(_paths.LocksDirectory);
        var owner = Path.Combine(_paths.LocksDirectory, "py.lock.owner");
        File.CreateSymbolicLink(owner, target);

        using (TagLock.Acquire(_paths, "py", "New-ForkdSnapshot"))
        {
        }

        using (TagLock.AcquireShared(_paths, "py", "Invoke-ForkdFork"))
        {
        }

        Assert.Equal("original", File.ReadAllText(target));
        Assert.Null(new FileInfo(owner).LinkTarget);
        Assert.Contains("Invoke-ForkdFork", File.ReadAllText(owner), StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_paths.LocksDirectory, "*.tmp"));
    }

    [Fact]
    public void A_dangling_link_at_the_lock_owner_note_creates_nothing_at_its_target()
    {
        var target = Path.Combine(_dir.Sub("outside"), "created-by-forkd");
        Directory.CreateDirectory(_paths.LocksDirectory);
        File.CreateSymbolicLink(Path.Combine(_paths.LocksDirectory, "py.lock.owner"), target);

        using (TagLock.Acquire(_paths, "py", "Remove-ForkdSnapshot"))
        {
        }

        Assert.False(File.Exists(target));
    }

    [Fact]
    public void Links_at_a_registry_record_or_its_temp_name_are_not_written_through_on_save()
    {
        var target = Target("record.json");
        var tempTarget = Target("record.tmp");
        var id = ChildRegistry.NewId("py");
        Directory.CreateDirectory(_paths.ChildrenDirectory);
        File.CreateSymbolicLink(Path.Combine(_paths.ChildrenDirectory, id + ".json"), target);
        File.CreateSymbolicLink(Path.Combine(_paths.ChildrenDirectory, id + ".json.tmp"), tempTarget); // the fixed temp name of 0.2

        new ChildRegistry(_paths).Save(new ForkdChild
        {
            Id = id,
            Tag = "py",
            Agent = new AgentEndpoint(AgentTransport.Unix, "/x"),
            WorkDirectory = Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000aaaa"),
        });

        Assert.Equal("original", File.ReadAllText(target));
        Assert.Equal("original", File.ReadAllText(tempTarget));
    }

    [Fact]
    public void A_linked_snapshot_json_is_refused_with_a_metadata_error()
    {
        var target = Target("snapshot.json");
        File.WriteAllText(target, """{ "backend": "qemu", "memory_mib": 256 }""");
        var snapshot = _dir.Sub("data", "snapshots", "py");
        File.CreateSymbolicLink(Path.Combine(snapshot, "snapshot.json"), target);

        var error = Assert.Throws<ForkdException>(() => SnapshotMetadata.Load(snapshot));

        Assert.Equal("SnapshotMetadataUnsafe", error.ErrorId);
        Assert.Contains("symbolic link", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_fifo_at_snapshot_json_does_not_hang_the_read()
    {
        var snapshot = _dir.Sub("data", "snapshots", "py");
        Forkd.Core.Host.HostCommand.Run("mkfifo", [Path.Combine(snapshot, "snapshot.json")]);

        var read = Task.Run(() => Assert.Throws<ForkdException>(() => SnapshotMetadata.Load(snapshot)));

        var error = await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("SnapshotMetadataUnsafe", error.ErrorId);
    }

    [Fact]
    public void The_data_dir_its_subdirs_and_every_work_dir_are_private()
    {
        var child = WorkDirectories.Create(_paths, WorkDirKind.Child, "py");
        var unpack = WorkDirectories.Create(_paths, WorkDirKind.Unpack, "py");
        using (TagLock.Acquire(_paths, "py", "test"))
        {
        }

        new ChildRegistry(_paths).Save(new ForkdChild
        {
            Id = ChildRegistry.NewId("py"),
            Tag = "py",
            Agent = new AgentEndpoint(AgentTransport.Unix, "/x"),
            WorkDirectory = child,
        });

        foreach (var dir in new[] { _paths.DataDirectory, _paths.StagingDirectory, _paths.LocksDirectory, _paths.ChildrenDirectory, child, unpack })
        {
            Assert.True((File.GetUnixFileMode(dir) & GroupOrOther) == 0, $"{dir} is {File.GetUnixFileMode(dir)}");
        }
    }

    [Fact]
    public void An_existing_data_dir_open_to_others_is_tightened()
    {
        Directory.CreateDirectory(_paths.ChildrenDirectory);
        File.SetUnixFileMode(_paths.DataDirectory, (UnixFileMode)Convert.ToInt32("777", 8));
        File.SetUnixFileMode(_paths.ChildrenDirectory, (UnixFileMode)Convert.ToInt32("777", 8));

        new ChildRegistry(_paths).Save(new ForkdChild
        {
            Id = ChildRegistry.NewId("py"),
            Tag = "py",
            Agent = new AgentEndpoint(AgentTransport.Unix, "/x"),
            WorkDirectory = Path.Combine(_paths.TempDirectory, "forkd-child-py-1-0000aaaa"),
        });

        Assert.True((File.GetUnixFileMode(_paths.DataDirectory) & GroupOrOther) == 0);
        Assert.True((File.GetUnixFileMode(_paths.ChildrenDirectory) & GroupOrOther) == 0);
    }
}
