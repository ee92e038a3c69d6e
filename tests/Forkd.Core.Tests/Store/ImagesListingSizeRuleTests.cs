using Forkd.Core.Store;

namespace Forkd.Core.Tests;

/// <summary>
/// forkd's <c>images</c> size rule (spec 1.12.7) sums <c>fs::metadata(..).len()</c> of snapshot.json,
/// vmstate, rootfs.ext4 and memory.bin; <c>fs::metadata</c> follows symbolic links.
/// </summary>
public sealed class ImagesListingSizeRuleTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly ForkdPaths _paths;

    public ImagesListingSizeRuleTests()
    {
        _paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_symlinked_memory_image_counts_its_targets_size_as_forkd_does()
    {
        var dir = _dir.Sub("data", "snapshots", "linked");
        File.WriteAllBytes(Path.Combine(dir, "vmstate"), new byte[1000]);
        var elsewhere = Path.Combine(_dir.Sub("elsewhere"), "guest-ram.bin");
        File.WriteAllBytes(elsewhere, new byte[3 << 20]);
        File.CreateSymbolicLink(Path.Combine(dir, "memory.bin"), elsewhere);

        var info = new SnapshotStore(_paths).Get("linked");

        Assert.Equal(1000 + (3 << 20), info.SizeBytes);
        Assert.True(info.DiskBytes >= 3 << 20, "allocated bytes are the target's too");
        Assert.True(info.IsComplete);
    }

    [Fact]
    public void A_chain_of_links_counts_the_final_target_and_a_dangling_link_counts_nothing()
    {
        var dir = _dir.Sub("data", "snapshots", "chain");
        File.WriteAllBytes(Path.Combine(dir, "vmstate"), new byte[10]);
        var target = Path.Combine(_dir.Sub("elsewhere"), "ram");
        File.WriteAllBytes(target, new byte[5000]);
        var hop = Path.Combine(_dir.Path, "elsewhere", "hop");
        File.CreateSymbolicLink(hop, target);
        File.CreateSymbolicLink(Path.Combine(dir, "memory.bin"), hop);
        File.CreateSymbolicLink(Path.Combine(dir, "rootfs.ext4"), Path.Combine(_dir.Path, "no-such-rootfs"));

        var info = new SnapshotStore(_paths).Get("chain");

        Assert.Equal(10 + 5000, info.SizeBytes);
        Assert.False(info.HasRootfs); // forkd's Path::exists follows the link too
    }
}
