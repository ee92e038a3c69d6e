using Forkd.Core.Engine;
using Forkd.Core.Store;

namespace Forkd.Core.Tests.Engine;

/// <summary>
/// A data dir with small snapshots and diff chains, made the way Checkpoint-ForkdChild stores them (8-page memory
/// images, <c>memory.diff</c>, <c>parent_tag</c> + <c>parent_content_hash</c>), for tests that need chains without VMs.
/// </summary>
public sealed class ChainFixture : IDisposable
{
    public const int Page = MemoryDiff.PageSize;
    public const int ImagePages = 8;

    public ChainFixture(string name = "data")
    {
        Dir = new TempDir();
        Store = new SnapshotStore(new ForkdPaths(Dir.Sub(name), Dir.Sub("tmp")));
    }

    public TempDir Dir { get; }

    public SnapshotStore Store { get; }

    public void Dispose() => Dir.Dispose();

    public static byte[] Pages(int count, byte fill) => Enumerable.Repeat(fill, count * Page).ToArray();

    /// <summary>The first byte of every page of an image: what the tests compare.</summary>
    public static byte[] PageMarks(string image)
    {
        var bytes = File.ReadAllBytes(image);
        return Enumerable.Range(0, bytes.Length / Page).Select(p => bytes[p * Page]).ToArray();
    }

    /// <summary>A standalone snapshot whose 8-page memory holds <paramref name="fill"/> in every page.</summary>
    public string MakeRoot(string tag, byte fill)
    {
        var dir = Path.Combine(Store.Paths.SnapshotsDirectory, tag);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.VmState), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.Memory), Pages(ImagePages, fill));
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.Kernel), [0x7f]);
        new SnapshotMetadata { Backend = "qemu", BackendConfig = new() { ["kernel"] = SnapshotFiles.Kernel } }.Save(dir);
        return dir;
    }

    /// <summary>A diff snapshot over <paramref name="parent"/> writing <paramref name="fill"/> into page <paramref name="page"/>.</summary>
    public string MakeDiff(string tag, string parent, int page, byte fill)
    {
        var dir = Path.Combine(Store.Paths.SnapshotsDirectory, tag);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.VmState), [4, 5, 6]);
        MemoryDiff.Write(Path.Combine(dir, MemoryDiff.FileName), ImagePages * Page, [new DiffRun(page, Pages(1, fill))]);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.Kernel), [0x7f]);
        var parentImage = new SnapshotChains(Store).PrepareMemory(Store.Get(parent), CancellationToken.None);
        new SnapshotMetadata
        {
            Backend = "qemu",
            BackendConfig = new() { ["kernel"] = SnapshotFiles.Kernel },
            ParentTag = parent,
            ParentContentHash = MemoryImageHash.Compute(parentImage),
            MemoryDiff = MemoryDiff.FileName,
        }.Save(dir);
        return dir;
    }
}
