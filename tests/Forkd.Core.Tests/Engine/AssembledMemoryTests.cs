using Forkd.Core.Engine;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Engine;

/// <summary>
/// The assembled memory image of a diff snapshot is a cache in the data dir, where others may plant or change files:
/// it is mapped only while its key matches, and otherwise assembled again from the verified chain.
/// </summary>
public sealed class AssembledMemoryTests : IDisposable
{
    private static readonly byte[] Expected = [0x10, 0xA1, 0xA2, 0x10, 0x10, 0x10, 0x10, 0x10];
    private readonly ChainFixture _chains = new();

    public void Dispose() => _chains.Dispose();

    private string Head()
    {
        _chains.MakeRoot("root", 0x10);
        _chains.MakeDiff("d1", "root", 1, 0xA1);
        return _chains.MakeDiff("d2", "d1", 2, 0xA2);
    }

    private string Prepare(string tag) => new SnapshotChains(_chains.Store).PrepareMemory(_chains.Store.Get(tag), CancellationToken.None);

    [Fact]
    public void A_modified_cache_of_the_head_is_assembled_again_before_it_is_mapped()
    {
        Head();
        var image = Prepare("d2");
        Assert.Equal(Expected, ChainFixture.PageMarks(image));
        using (var f = new FileStream(image, FileMode.Open, FileAccess.Write))
        {
            f.Position = 5 * ChainFixture.Page;
            f.WriteByte(0xEE); // planted content in a page nobody's diff wrote
        }

        Assert.Equal(Expected, ChainFixture.PageMarks(Prepare("d2")));
    }

    [Fact]
    public void A_file_planted_before_the_first_fork_is_never_mapped()
    {
        var head = Head();
        var planted = Path.Combine(head, SnapshotFiles.Memory);
        File.WriteAllBytes(planted, ChainFixture.Pages(ChainFixture.ImagePages, 0xEE));
        Assert.Equal(Expected, ChainFixture.PageMarks(Prepare("d2")));
    }

    [Fact]
    public void A_planted_key_does_not_make_a_planted_image_trusted_and_a_link_is_replaced_not_followed()
    {
        var head = Head();
        var image = Prepare("d2");
        var outside = Path.Combine(head, "planted.bin"); // a link out of the dir is refused at load already (SnapshotMetadataUnsafe)
        File.WriteAllBytes(outside, ChainFixture.Pages(ChainFixture.ImagePages, 0xEE));
        File.Delete(image);
        File.CreateSymbolicLink(image, outside);
        Assert.Equal(Expected, ChainFixture.PageMarks(Prepare("d2")));
        Assert.Null(new FileInfo(image).LinkTarget);
        Assert.Equal(0xEE, File.ReadAllBytes(outside)[0]); // the link's target was not written

        // A key copied from elsewhere names another inode or ctime: the image it sits beside is rebuilt.
        var key = File.ReadAllText(image + AssembledMemory.KeySuffix);
        File.WriteAllBytes(image + ".new", ChainFixture.Pages(ChainFixture.ImagePages, 0xEE));
        File.Move(image + ".new", image, overwrite: true);
        File.WriteAllText(image + AssembledMemory.KeySuffix, key);
        Assert.Equal(Expected, ChainFixture.PageMarks(Prepare("d2")));
        Assert.True(File.Exists(Path.Combine(head, SnapshotFiles.Memory)));
    }

    [Fact]
    public void A_cache_built_from_another_diff_is_rebuilt_when_the_diff_changes()
    {
        var head = Head();
        Prepare("d2");
        MemoryDiff.Write(Path.Combine(head, MemoryDiff.FileName), ChainFixture.ImagePages * ChainFixture.Page, [new DiffRun(3, ChainFixture.Pages(1, 0xB3))]);
        Assert.Equal(new byte[] { 0x10, 0xA1, 0x10, 0xB3, 0x10, 0x10, 0x10, 0x10 }, ChainFixture.PageMarks(Prepare("d2")));
    }

    [Fact]
    public void An_unchanged_cache_is_used_as_it_is()
    {
        Head();
        var image = Prepare("d2");
        var key = MemoryImageHashKey(image);
        Assert.Equal(image, Prepare("d2"));
        Assert.Equal(key, MemoryImageHashKey(image)); // same inode and ctime: not rebuilt
    }

    private static string MemoryImageHashKey(string image) =>
        $"{new FileInfo(image).Length}:{Forkd.Core.Host.NativeFile.Inode(image)}:{File.GetLastWriteTimeUtc(image).Ticks}";
}
