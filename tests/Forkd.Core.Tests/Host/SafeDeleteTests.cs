using Forkd.Core.Host;
using Xunit;

namespace Forkd.Core.Tests.Host;

/// <summary>The handle-relative delete (issue 10.5): links are unlinked, never followed, and mounts are never crossed.</summary>
public sealed class SafeDeleteTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public void A_mount_inside_the_tree_is_not_descended_into()
    {
        Skip.If(NativeFile.EffectiveUid != 0, "mounting a tmpfs needs root");
        var tree = _dir.Sub("tree");
        var mountPoint = _dir.Sub("tree", "mnt");
        File.WriteAllText(Path.Combine(tree, "ours"), "x");
        HostCommand.Run("mount", ["-t", "tmpfs", "-o", "size=1m", "forkd-test", mountPoint]);
        try
        {
            File.WriteAllText(Path.Combine(mountPoint, "on-another-fs"), "keep");

            var error = Assert.Throws<IOException>(() => SafeDelete.Delete(tree));

            Assert.Contains("mount point", error.Message, StringComparison.Ordinal);
            Assert.True(File.Exists(Path.Combine(mountPoint, "on-another-fs")));
        }
        finally
        {
            HostCommand.Run("umount", [mountPoint]);
        }

        SafeDelete.Delete(tree);
        Assert.False(Directory.Exists(tree));
    }

    [Fact]
    public void Links_anywhere_in_the_tree_are_removed_as_links()
    {
        var outside = _dir.Sub("outside");
        File.WriteAllText(Path.Combine(outside, "keep"), "keep");
        var tree = _dir.Sub("tree", "a", "b");
        Directory.CreateSymbolicLink(Path.Combine(tree, "dir-link"), outside);
        File.CreateSymbolicLink(Path.Combine(tree, "file-link"), Path.Combine(outside, "keep"));
        var top = Path.Combine(_dir.Path, "top-link");
        Directory.CreateSymbolicLink(top, outside);

        SafeDelete.Delete(Path.Combine(_dir.Path, "tree"));
        SafeDelete.Delete(top);

        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "tree")));
        Assert.False(Path.Exists(top));
        Assert.Equal("keep", File.ReadAllText(Path.Combine(outside, "keep")));
    }

    [Fact]
    public void A_missing_path_is_fine()
    {
        SafeDelete.Delete(Path.Combine(_dir.Path, "no", "such", "thing"));
        Assert.True(Directory.Exists(_dir.Path));
    }
}
