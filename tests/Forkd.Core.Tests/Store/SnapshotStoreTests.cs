using Forkd.Core;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Tests;

public sealed class SnapshotStoreTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;

    public SnapshotStoreTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
    }

    public void Dispose() => _dir.Dispose();

    private string MakeForkdSnapshot(string tag, bool rootfs = false, string? json = null)
    {
        var dir = _dir.Sub("data", "snapshots", tag);
        File.WriteAllBytes(Path.Combine(dir, "vmstate"), new byte[14540]);
        using (var mem = File.Create(Path.Combine(dir, "memory.bin")))
        {
            mem.SetLength(8 << 20); // sparse: apparent 8 MiB, almost nothing on disk
        }

        if (rootfs)
        {
            File.WriteAllBytes(Path.Combine(dir, "rootfs.ext4"), new byte[4096]);
        }

        if (json is not null)
        {
            File.WriteAllText(Path.Combine(dir, "snapshot.json"), json);
        }

        return dir;
    }

    [Fact]
    public void Lists_snapshots_sorted_with_forkd_sizes()
    {
        MakeForkdSnapshot("zeta");
        MakeForkdSnapshot("alpha", rootfs: true);
        var store = new SnapshotStore(_paths);

        var all = store.List();

        Assert.Equal(["alpha", "zeta"], all.Select(s => s.Tag));
        Assert.Equal(14540 + (8 << 20) + 4096, all[0].SizeBytes);
        Assert.True(all[0].HasRootfs);
        Assert.False(all[1].HasRootfs);
        Assert.True(all[1].IsComplete);
        Assert.True(all[1].DiskBytes < all[1].SizeBytes, "a sparse memory image must not count as allocated");
        Assert.Equal("forkd", all[1].CreatedBy);
        Assert.Equal(BackendKind.Firecracker, all[1].Backend);
    }

    [Fact]
    public void Wildcards_filter_and_strays_are_ignored()
    {
        MakeForkdSnapshot("py-a");
        MakeForkdSnapshot("py-b");
        MakeForkdSnapshot("node");
        _dir.Sub("data", "snapshots", ".not-a-tag");
        var store = new SnapshotStore(_paths);

        Assert.Equal(["py-a", "py-b"], store.List("py*").Select(s => s.Tag));
        Assert.Equal(3, store.List().Count);
    }

    [Fact]
    public void Forkd_metadata_with_foreign_absolute_paths_resolves_inside_the_snapshot()
    {
        var dir = MakeForkdSnapshot("moved", json: """
            {
              "vmstate": "/home/other/.local/share/forkd/snapshots/pyagent/vmstate",
              "memory": "/home/other/.local/share/forkd/snapshots/pyagent/memory.bin",
              "volumes": [ { "host_path": "/v.img", "guest_path": "/opt/v" } ]
            }
            """);
        var snap = new SnapshotStore(_paths).Get("moved");

        Assert.Equal(Path.Combine(dir, "memory.bin"), snap.Metadata.ResolveMemory(dir));
        Assert.Equal(Path.Combine(dir, "vmstate"), snap.Metadata.ResolveVmState(dir));
        Assert.False(Assert.Single(snap.Metadata.Volumes).ReadOnly);
        Assert.True(snap.IsComplete);
    }

    [Fact]
    public void Broken_metadata_is_an_InvalidData_error()
    {
        MakeForkdSnapshot("bad", json: "{ not json");
        var ex = Assert.Throws<ForkdException>(() => new SnapshotStore(_paths).Get("bad"));
        Assert.Equal("SnapshotMetadataInvalid", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.InvalidData, ex.Kind);
    }

    [Fact]
    public void Missing_snapshot_is_SnapshotNotFound()
    {
        var ex = Assert.Throws<ForkdException>(() => new SnapshotStore(_paths).Get("nope"));
        Assert.Equal("SnapshotNotFound", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.NotFound, ex.Kind);
    }

    [Fact]
    public void Remove_deletes_the_directory_and_leaves_no_staging_residue()
    {
        var dir = MakeForkdSnapshot("gone");
        new SnapshotStore(_paths).Remove("gone");

        Assert.False(Directory.Exists(dir));
        Assert.Empty(Directory.EnumerateFileSystemEntries(_paths.StagingDirectory));
    }

    [Fact]
    public void A_removed_tag_leaves_no_lock_file_and_the_tag_locks_again()
    {
        MakeForkdSnapshot("gone2");
        new SnapshotStore(_paths).Remove("gone2");

        Assert.Empty(Directory.EnumerateFileSystemEntries(_paths.LocksDirectory, "gone2.lock*"));
        using var again = TagLock.Acquire(_paths, "gone2", "test");
        Assert.True(File.Exists(Path.Combine(_paths.LocksDirectory, "gone2.lock")));
    }

    [Fact]
    public void A_link_planted_at_a_lock_file_is_refused_and_its_target_is_never_created_or_touched()
    {
        Directory.CreateDirectory(_paths.LocksDirectory);
        var missingTarget = Path.Combine(_paths.TempDirectory, "planted-new");
        var existingTarget = Path.Combine(_paths.TempDirectory, "planted-existing");
        Directory.CreateDirectory(_paths.TempDirectory);
        File.WriteAllText(existingTarget, "precious");
        File.CreateSymbolicLink(Path.Combine(_paths.LocksDirectory, "t1.lock"), missingTarget);
        File.CreateSymbolicLink(Path.Combine(_paths.LocksDirectory, "t2.lock"), existingTarget);

        Assert.Equal("LockFileUnsafe", Assert.Throws<ForkdException>(() => TagLock.Acquire(_paths, "t2", "test")).ErrorId);
        Assert.Equal("LockFileUnsafe", Assert.Throws<ForkdException>(() => TagLock.AcquireShared(_paths, "t2", "test")).ErrorId);
        Assert.Equal("precious", File.ReadAllText(existingTarget));
        Assert.Equal("LockFileUnsafe", Assert.Throws<ForkdException>(() => TagLock.Acquire(_paths, "t1", "test")).ErrorId);
        Assert.False(File.Exists(missingTarget));
    }

    [Fact]
    public void Remove_refuses_while_children_run()
    {
        var dir = MakeForkdSnapshot("busy");
        // A registry record whose VMM is alive (a real idle QEMU naming the work dir): the store itself asks its registry.
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Child, "busy");
        using var qemu = Forkd.Core.Tests.Engine.RealVmm.Start(workDir);
        var store = new SnapshotStore(_paths);
        store.Children.Save(new ForkdChild
        {
            Id = "busy-0001",
            Tag = "busy",
            Index = 1,
            ProcessId = qemu.Id,
            Agent = new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDir, "agent.sock")),
            WorkDirectory = workDir,
            StartedAt = DateTimeOffset.UtcNow,
        });

        try
        {
            var ex = Assert.Throws<ForkdException>(() => store.Remove("busy"));
            Assert.Equal("SnapshotInUse", ex.ErrorId);
            Assert.True(File.Exists(Path.Combine(dir, "memory.bin")));
        }
        finally
        {
            qemu.Kill();
            qemu.WaitForExit();
        }
    }


    [Fact]
    public void Remove_refuses_while_another_operation_holds_the_tag()
    {
        var dir = MakeForkdSnapshot("locked");
        using var held = TagLock.Acquire(_paths, "locked", "New-ForkdSnapshot");

        var ex = Assert.Throws<ForkdException>(() => new SnapshotStore(_paths).Remove("locked"));

        Assert.Equal("TagInUse", ex.ErrorId);
        Assert.Contains("New-ForkdSnapshot", ex.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(dir));
    }

    [Fact]
    public void Tag_lock_is_released_on_dispose()
    {
        TagLock.Acquire(_paths, "t", "first").Dispose();
        using var second = TagLock.Acquire(_paths, "t", "second");
        Assert.Equal("t", second.Tag);
    }

    [Fact]
    public void Metadata_round_trips_and_writes_relative_paths()
    {
        var dir = _dir.Sub("data", "snapshots", "ours");
        new SnapshotMetadata { Backend = "qemu", Accelerator = "tcg", MemoryMiB = 256, Recipe = "minimal", CreatedBy = "Forkd 0.2.0" }.Save(dir);

        var text = File.ReadAllText(Path.Combine(dir, "snapshot.json"));
        var back = SnapshotMetadata.Load(dir);

        Assert.Contains("\"vmstate\": \"vmstate\"", text, StringComparison.Ordinal);
        Assert.Contains("\"memory\": \"memory.bin\"", text, StringComparison.Ordinal);
        Assert.Equal("qemu", back.Backend);
        Assert.Equal(256, back.MemoryMiB);
    }
}
