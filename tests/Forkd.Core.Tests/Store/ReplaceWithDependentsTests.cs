using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Tests.Engine;
using Xunit;

namespace Forkd.Core.Tests.Store;

/// <summary>
/// A -Force replace of a snapshot that diff snapshots depend on would give it another memory image and break every
/// dependent silently; the store refuses it (SnapshotHasDependents, naming them) for every producer, since they all
/// install through SnapshotStore.Install. An in-place merge keeps the same image and is allowed.
/// </summary>
public sealed class ReplaceWithDependentsTests : IDisposable
{
    private readonly ChainFixture _chains = new();

    public void Dispose() => _chains.Dispose();

    private SnapshotStore Store => _chains.Store;

    private string StageStandalone(string tag, byte fill)
    {
        var staging = WorkDirectories.Create(Store.Paths, WorkDirKind.Snapshot, tag);
        File.WriteAllBytes(Path.Combine(staging, SnapshotFiles.VmState), [9]);
        File.WriteAllBytes(Path.Combine(staging, SnapshotFiles.Memory), ChainFixture.Pages(ChainFixture.ImagePages, fill));
        new SnapshotMetadata { Backend = "qemu" }.Save(staging);
        return staging;
    }

    [Fact]
    public void Replacing_a_parent_of_diffs_is_refused_naming_them_and_nothing_changes()
    {
        _chains.MakeRoot("root", 0x10);
        _chains.MakeDiff("d1", "root", 1, 0xA1);
        _chains.MakeDiff("d2", "d1", 2, 0xA2);
        var before = File.ReadAllBytes(Path.Combine(Store.Paths.SnapshotDirectory("root"), SnapshotFiles.Memory));
        var staging = StageStandalone("root", 0x77);
        ForkdException ex;
        using (var tagLock = TagLock.Acquire(Store.Paths, "root", "test"))
        {
            ex = Assert.Throws<ForkdException>(() => Store.Install(tagLock, staging, replace: true));
        }

        Assert.Equal("SnapshotHasDependents", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.InUse, ex.Kind);
        Assert.Contains("replace it", ex.Message, StringComparison.Ordinal);
        Assert.Contains("d1, d2", ex.Message.Replace("d2, d1", "d1, d2", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("Merge-ForkdSnapshot -Tag d1", ex.Hint, StringComparison.Ordinal);
        Assert.Contains("Remove-ForkdSnapshot -Tag root -Force", ex.Hint, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(Store.Paths.SnapshotDirectory("root"), SnapshotFiles.Memory)));
        Assert.Equal(ChainFixture.PageMarks(new SnapshotChains(Store).PrepareMemory(Store.Get("d2"), CancellationToken.None)),
            new byte[] { 0x10, 0xA1, 0xA2, 0x10, 0x10, 0x10, 0x10, 0x10 });
        Assert.Throws<ForkdException>(() => Store.ThrowIfNotReplaceable("d1")); // the early check every -Force path makes
        Store.ThrowIfNotReplaceable("d2"); // a head has no dependents
    }

    [Fact]
    public void Merging_into_an_existing_tag_with_dependents_is_refused_and_in_place_is_allowed()
    {
        _chains.MakeRoot("root", 0x10);
        _chains.MakeDiff("d1", "root", 1, 0xA1);
        _chains.MakeDiff("d2", "d1", 2, 0xA2);
        _chains.MakeRoot("other", 0x20);
        _chains.MakeDiff("over-other", "other", 3, 0xB3);
        var chains = new SnapshotChains(Store);

        var ex = Assert.Throws<ForkdException>(() => chains.Merge("d2", "other", force: true, "test", CancellationToken.None));
        Assert.Equal("SnapshotHasDependents", ex.ErrorId);
        Assert.Contains("over-other", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0x20, ChainFixture.PageMarks(Path.Combine(Store.Paths.SnapshotDirectory("other"), SnapshotFiles.Memory))[1]);

        // In place: d1 becomes standalone with the same image, so d2 (a diff over it) still forks.
        var merged = chains.Merge("d1", null, force: false, "test", CancellationToken.None);
        Assert.False(merged.Snapshot.Metadata.IsDiff);
        Assert.Equal(new byte[] { 0x10, 0xA1, 0xA2, 0x10, 0x10, 0x10, 0x10, 0x10 },
            ChainFixture.PageMarks(chains.PrepareMemory(Store.Get("d2"), CancellationToken.None)));
        Assert.Empty(Store.Dependents("root"));
        Assert.Equal(["d2"], Store.Dependents("d1"));
    }
}
