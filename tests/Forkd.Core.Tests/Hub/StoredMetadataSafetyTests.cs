using System.Text.Json.Nodes;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// A snapshot directory copied into the data dir by hand gets the same checks as an imported pack:
/// loading its metadata throws a ForkdException naming the field (never a raw JsonException), so the
/// store can report that one snapshot and list the others.
/// </summary>
public sealed class StoredMetadataSafetyTests : IDisposable
{
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    private string HandCopied(string tag, string json)
    {
        var dir = HubSandbox.MakeSnapshot(_box.Paths, tag, pages: 4, metadataJson: json);
        File.WriteAllBytes(Path.Combine(dir, "vmlinux"), new byte[64]);
        return dir;
    }

    private ForkdException LoadFails(string tag) =>
        Assert.Throws<ForkdException>(() => new SnapshotStore(_box.Paths).Get(tag));

    private static string Qemu(Action<JsonObject>? change = null)
    {
        var doc = PackMetadataSafetyTests.QemuMetadata();
        change?.Invoke(doc);
        return doc.ToJsonString();
    }

    [Theory]
    [InlineData("kernel", "/etc/hostname")]
    [InlineData("rootdisk.img", "/dev/null")]
    [InlineData("memory.bin", "/etc/hostname")]
    public void A_symlink_leaving_the_snapshot_directory_is_refused(string file, string target)
    {
        var dir = HandCopied("linked", Qemu());
        var link = Path.Combine(dir, file == "kernel" ? "vmlinux" : file);
        File.Delete(link);
        File.CreateSymbolicLink(link, target);
        var ex = LoadFails("linked");
        Assert.Equal("SnapshotMetadataUnsafe", ex.ErrorId);
        Assert.Contains("symbolic link", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_symlink_to_a_file_inside_the_directory_is_fine()
    {
        var dir = HandCopied("inside", Qemu());
        File.Move(Path.Combine(dir, "vmlinux"), Path.Combine(dir, "vmlinux-6.1"));
        File.CreateSymbolicLink(Path.Combine(dir, "vmlinux"), "vmlinux-6.1");
        Assert.Equal("inside", new SnapshotStore(_box.Paths).Get("inside").Tag);
    }

    [Fact]
    public void A_fifo_or_device_in_place_of_a_file_is_refused()
    {
        var dir = HandCopied("fifo", Qemu());
        HubSandbox.Sh($"mkfifo '{Path.Combine(dir, "rootdisk.img")}'");
        Assert.Equal("SnapshotMetadataUnsafe", LoadFails("fifo").ErrorId);
    }

    [Theory]
    [InlineData("/dev/sda")]
    [InlineData("/etc/passwd")]
    [InlineData("../other/rootdisk.img")]
    public void A_drive_outside_the_directory_is_refused(string path)
    {
        HandCopied("drive", Qemu(d => d["backend_config"]!["drives"]![0]!["path"] = path));
        var ex = LoadFails("drive");
        Assert.Equal("SnapshotMetadataUnsafe", ex.ErrorId);
        Assert.Contains("'backend_config.drives[0].path'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_volume_drive_that_does_not_match_its_declared_volume_is_refused()
    {
        HandCopied("voldrive", Qemu(d => d["backend_config"]!["drives"]![1]!["path"] = "/dev/sdb"));
        var ex = LoadFails("voldrive");
        Assert.Equal("SnapshotMetadataUnsafe", ex.ErrorId);
        Assert.Contains("'backend_config.drives[1].path'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wrong_types_give_a_forkd_error_not_a_json_exception()
    {
        HandCopied("types", """{"vmstate":"vmstate","memory":"memory.bin","volumes":5}""");
        var ex = LoadFails("types");
        Assert.Equal("SnapshotMetadataInvalid", ex.ErrorId);
        Assert.Contains("'volumes'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(Forkd.Core.ForkdErrorKind.InvalidData, ex.Kind);
    }

    [Fact]
    public void A_snapshot_json_that_is_a_symlink_is_not_followed()
    {
        var dir = HandCopied("jsonlink", Qemu());
        var outside = Path.Combine(_box.Root, "outside.json");
        File.WriteAllText(outside, Qemu());
        File.Delete(Path.Combine(dir, "snapshot.json"));
        File.CreateSymbolicLink(Path.Combine(dir, "snapshot.json"), outside);
        Assert.Equal("SnapshotMetadataUnsafe", LoadFails("jsonlink").ErrorId);
    }

    [Fact]
    public void A_locally_made_snapshot_with_a_volume_and_a_forkd_made_one_still_load()
    {
        HandCopied("local", Qemu());
        var local = new SnapshotStore(_box.Paths).Get("local");
        Assert.Equal("/var/lib/forkd/vol/cache.img", Assert.Single(local.Metadata.Volumes).HostPath);
        HubSandbox.MakeSnapshot(_box.Paths, "forkdmade", pages: 4); // forkd's layout: another host's absolute vmstate/memory
        var forkd = new SnapshotStore(_box.Paths).Get("forkdmade");
        Assert.True(forkd.IsComplete);
    }
}
