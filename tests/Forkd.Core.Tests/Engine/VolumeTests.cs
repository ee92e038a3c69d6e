using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Big;

[Trait(Tiers.Name, Tiers.Full)]
public class VolumeTests
{
    [Theory]
    [InlineData("/var/lib/forkd/vol/pyagent.img:/opt/cache", "/var/lib/forkd/vol/pyagent.img", "/opt/cache", false)]
    [InlineData("/m.img:/models:ro", "/m.img", "/models", true)]
    [InlineData("/host.img:/guest:rw", "/host.img", "/guest", false)]
    // forkd's splitn(3) bug: a ':' in the guest path landed in the flag slot. The flag is read from the end here.
    [InlineData("/h.img:/data/a:b:ro", "/h.img", "/data/a:b", true)]
    [InlineData("/h.img:/data/x:/y", "/h.img", "/data/x:/y", false)]
    public void Parse_splits_host_guest_and_flag(string spec, string host, string guest, bool readOnly)
    {
        var v = Volumes.Parse(spec);
        Assert.Equal(new VolumeSpec(host, guest, readOnly), v);
    }

    [Theory]
    [InlineData("/host.img", "expected HOST:GUEST or HOST:GUEST:ro")]
    [InlineData("/host.img:", "expected HOST:GUEST or HOST:GUEST:ro")]
    [InlineData(":/guest", "expected HOST:GUEST or HOST:GUEST:ro")]
    [InlineData("/host.img:/guest:wat", "trailing flag must be 'ro' or 'rw', got 'wat'")]
    [InlineData("/host.img:relative", "must be absolute")]
    [InlineData("/host.img:/", "must be absolute")]
    [InlineData("/host.img:/a,b", "contain no ','")]
    [InlineData("/host.img:/a b", "contain no ','")]
    [InlineData("/host.img::ro", "expected HOST:GUEST")]
    public void Parse_rejects_bad_specs_with_forkd_messages(string spec, string fragment)
    {
        var ex = Assert.Throws<ForkdException>(() => Volumes.Parse(spec));
        Assert.Equal("InvalidVolumeSpec", ex.ErrorId);
        Assert.Contains(fragment, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_caps_at_24_and_requires_existing_host_files()
    {
        var tooMany = Enumerable.Range(0, 25).Select(i => new VolumeSpec("/x" + i, "/g" + i)).ToList();
        Assert.Equal("TooManyVolumes", Assert.Throws<ForkdException>(() => Volumes.Validate(tooMany)).ErrorId);

        var missing = Assert.Throws<ForkdException>(() => Volumes.Validate([new VolumeSpec("/nonexistent/forkd-vol.img", "/data")]));
        Assert.Equal("VolumeNotFound", missing.ErrorId);
        Assert.Contains("mkfs.ext4 -F /nonexistent/forkd-vol.img", missing.Hint, StringComparison.Ordinal);

        var file = Path.GetTempFileName();
        try
        {
            var dup = Assert.Throws<ForkdException>(() => Volumes.Validate([new VolumeSpec(file, "/d"), new VolumeSpec(file, "/d", true)]));
            Assert.Equal("VolumeGuestPathDuplicate", dup.ErrorId);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Device_names_follow_the_root_disk_and_stop_at_vdy()
    {
        Assert.Equal("vdb", Volumes.DeviceName(0, hasRootDisk: true));
        Assert.Equal("vdy", Volumes.DeviceName(23, hasRootDisk: true));
        Assert.Equal("vda", Volumes.DeviceName(0, hasRootDisk: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => Volumes.DeviceName(24, hasRootDisk: true));
        Assert.Equal("forkd.mounts=vdb:/opt/a,vdc:/opt/b",
            Volumes.MountsArgument([new VolumeSpec("/a", "/opt/a"), new VolumeSpec("/b", "/opt/b", true)], hasRootDisk: true));
        Assert.Equal("", Volumes.MountsArgument([], hasRootDisk: true));
    }

    [Fact]
    public void Shared_writable_volume_is_refused_for_a_second_writer_unless_forced()
    {
        IReadOnlyList<VolumeSpec> rw = [new VolumeSpec("/v.img", "/data")];
        IReadOnlyList<VolumeSpec> ro = [new VolumeSpec("/v.img", "/data", true)];
        Assert.Null(Volumes.CheckSharedWritable("t", rw, newChildren: 1, runningChildren: 0, force: false));
        Assert.Null(Volumes.CheckSharedWritable("t", ro, newChildren: 8, runningChildren: 3, force: false));
        Assert.Equal("VolumeSharedWritable",
            Assert.Throws<ForkdException>(() => Volumes.CheckSharedWritable("t", rw, newChildren: 2, runningChildren: 0, force: false)).ErrorId);
        // One new child while another already runs is a second writer too.
        Assert.Throws<ForkdException>(() => Volumes.CheckSharedWritable("t", rw, newChildren: 1, runningChildren: 1, force: false));
        Assert.Contains("forced", Volumes.CheckSharedWritable("t", rw, newChildren: 2, runningChildren: 0, force: true), StringComparison.Ordinal);
    }

    [Fact]
    public void Qemu_drives_are_virtio_blk_read_only_for_the_root_and_round_trip_relative_paths()
    {
        IReadOnlyList<DriveSpec> drives =
        [
            new DriveSpec("root", "/snap/rootdisk.img", ReadOnly: true, IsRoot: true),
            new DriveSpec("vol0", "/v,1.img", ReadOnly: false, AllowSharedWrite: true),
        ];
        var args = QemuDrives.Arguments(drives).ToList();
        Assert.Equal(
        [
            "-drive", "file=/snap/rootdisk.img,if=none,format=raw,id=root,readonly=on", "-device", "virtio-blk-device,drive=root",
            "-drive", "file=/v,,1.img,if=none,format=raw,id=vol0,readonly=off,file.locking=off", "-device", "virtio-blk-device,drive=vol0",
        ], args);

        var json = QemuDrives.ToJson([drives[0] with { HostPath = "rootdisk.img" }, drives[1]]);
        var back = QemuDrives.FromJson(json, "/data/snapshots/pw");
        Assert.Equal("/data/snapshots/pw/rootdisk.img", back[0].HostPath);
        Assert.True(back[0].ReadOnly && back[0].IsRoot);
        Assert.Equal("/v,1.img", back[1].HostPath);
        Assert.False(back[1].AllowSharedWrite); // a forced shared write is per fork, never recorded

        var overridden = QemuDrives.Override(back, [back[1] with { AllowSharedWrite = true }]);
        Assert.True(overridden[1].AllowSharedWrite);
        Assert.Same(back[0], overridden[0]);
    }
}
