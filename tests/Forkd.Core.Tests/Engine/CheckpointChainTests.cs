using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Engine;

/// <summary>
/// Diff snapshots without VMs: the diff file format (and its refusals), the stat-keyed hash cache, chain
/// verification and assembly, dependents on removal, the pagemap bits, and the vmstate header a checkpoint borrows.
/// The same behaviour with real TCG children is in tests/Pester/Branch.Tests.ps1.
/// </summary>
public sealed class CheckpointChainTests : IDisposable
{
    private const int Page = ChainFixture.Page;
    private readonly ChainFixture _chains = new();
    private readonly TempDir _dir;
    private readonly SnapshotStore _store;

    public CheckpointChainTests()
    {
        _dir = _chains.Dir;
        _store = _chains.Store;
    }

    public void Dispose() => _chains.Dispose();

    private static byte[] Pages(int count, byte fill) => ChainFixture.Pages(count, fill);

    private string MakeRoot(string tag, byte fill) => _chains.MakeRoot(tag, fill);

    private string MakeDiff(string tag, string parent, int page, byte fill) => _chains.MakeDiff(tag, parent, page, fill);

    [Fact]
    public void A_diff_round_trips_and_applies_only_its_pages()
    {
        var diff = Path.Combine(_dir.Path, "d");
        MemoryDiff.Write(diff, 8 * Page, [new DiffRun(1, Pages(2, 0xAA)), new DiffRun(6, Pages(1, 0xBB))]);
        var (size, runs) = MemoryDiff.ReadIndex(diff);
        Assert.Equal(8 * Page, size);
        Assert.Equal([(1L, 2L), (6L, 1L)], runs);
        var image = Path.Combine(_dir.Path, "img");
        File.WriteAllBytes(image, Pages(8, 0x11));
        MemoryDiff.ApplyTo(diff, image, CancellationToken.None);
        var bytes = File.ReadAllBytes(image);
        byte[] expected = [0x11, 0xAA, 0xAA, 0x11, 0x11, 0x11, 0xBB, 0x11];
        Assert.Equal(expected, Enumerable.Range(0, 8).Select(p => bytes[p * Page]).ToArray());
    }

    [Theory]
    [InlineData("overlapping runs")]
    [InlineData("run past the image")]
    [InlineData("truncated data")]
    [InlineData("bad magic")]
    public void A_damaged_diff_is_refused_and_never_applied(string damage)
    {
        var diff = Path.Combine(_dir.Path, "d");
        MemoryDiff.Write(diff, 8 * Page, [new DiffRun(1, Pages(2, 0xAA)), new DiffRun(5, Pages(1, 0xBB))]);
        var bytes = File.ReadAllBytes(diff);
        switch (damage)
        {
            case "overlapping runs": BitConverter.TryWriteBytes(bytes.AsSpan(32 + 16), 2L); break; // second run starts inside the first
            case "run past the image": BitConverter.TryWriteBytes(bytes.AsSpan(32 + 16), 7L); BitConverter.TryWriteBytes(bytes.AsSpan(32 + 24), 5L); break;
            case "truncated data": bytes = bytes[..^1]; break;
            default: bytes[0] = (byte)'X'; break;
        }

        File.WriteAllBytes(diff, bytes);
        var image = Path.Combine(_dir.Path, "img");
        File.WriteAllBytes(image, Pages(8, 0x11));
        var ex = Assert.Throws<ForkdException>(() => MemoryDiff.ApplyTo(diff, image, CancellationToken.None));
        Assert.Equal("SnapshotDiffInvalid", ex.ErrorId);
        Assert.All(File.ReadAllBytes(image), b => Assert.Equal(0x11, b));
    }

    [Fact]
    public void The_hash_cache_is_used_while_the_image_is_unchanged_and_dropped_when_it_changes()
    {
        var image = Path.Combine(_dir.Path, "memory.bin");
        File.WriteAllBytes(image, Pages(4, 0x22));
        var first = MemoryImageHash.Get(image);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(image))), first);
        Assert.True(File.Exists(image + MemoryImageHash.Suffix));

        // A planted cache entry with the right key is believed (that is the point: one stat per fork) ...
        var cache = JsonNode.Parse(File.ReadAllText(image + MemoryImageHash.Suffix))!.AsObject();
        cache["sha256"] = new string('0', 64);
        File.WriteAllText(image + MemoryImageHash.Suffix, cache.ToJsonString());
        Assert.Equal(new string('0', 64), MemoryImageHash.Get(image));

        // ... but any write to the image, even one that restores its mtime, changes the key, so it is hashed again.
        var reference = image + ".ref";
        Touch("-r", image, reference); // the exact mtime (ns), which File.SetLastWriteTimeUtc cannot restore
        using (var f = new FileStream(image, FileMode.Open, FileAccess.Write))
        {
            f.Position = Page;
            f.WriteByte(0x23);
        }

        Touch("-r", reference, image);
        Assert.Equal(File.GetLastWriteTimeUtc(reference), File.GetLastWriteTimeUtc(image));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(image))), MemoryImageHash.Get(image));
    }

    private static void Touch(params string[] args)
    {
        using var touch = System.Diagnostics.Process.Start("touch", args);
        touch.WaitForExit();
        Assert.Equal(0, touch.ExitCode);
    }

    [Fact]
    public void A_chain_of_three_diffs_assembles_once_and_matches_the_pages_each_link_wrote()
    {
        MakeRoot("root", 0x10);
        MakeDiff("d1", "root", 1, 0xA1);
        MakeDiff("d2", "d1", 2, 0xA2);
        MakeDiff("d3", "d2", 1, 0xA3);
        var chains = new SnapshotChains(_store);
        Assert.Equal(["root", "d1", "d2", "d3"], chains.Resolve("d3").Select(s => s.Tag));
        var image = chains.PrepareMemory(_store.Get("d3"), CancellationToken.None);
        var bytes = File.ReadAllBytes(image);
        byte[] expected = [0x10, 0xA3, 0xA2, 0x10, 0x10, 0x10, 0x10, 0x10];
        Assert.Equal(expected, Enumerable.Range(0, 8).Select(p => bytes[p * Page]).ToArray());
        var assembledAt = File.GetLastWriteTimeUtc(image);
        Assert.Equal(image, chains.PrepareMemory(_store.Get("d3"), CancellationToken.None));
        Assert.Equal(assembledAt, File.GetLastWriteTimeUtc(image)); // cached, not assembled again

        var merged = chains.Merge("d3", "flat", force: false, "test", CancellationToken.None);
        Assert.False(merged.Snapshot.Metadata.IsDiff);
        Assert.Equal(["root", "d1", "d2", "d3"], merged.Chain);
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(merged.Snapshot.Path, SnapshotFiles.Memory)));
    }

    [Fact]
    public void An_assembly_left_by_a_dead_process_is_removed_and_a_live_one_kept()
    {
        MakeRoot("root", 0x10);
        var d1 = MakeDiff("d1", "root", 1, 0xA1);
        using var exited = System.Diagnostics.Process.Start("true");
        exited.WaitForExit();
        var dead = Path.Combine(d1, $"memory.bin.assembling-{exited.Id}-0123");
        var live = Path.Combine(d1, $"memory.bin.assembling-{Environment.ProcessId}-4567");
        File.WriteAllText(dead, "half");
        File.WriteAllText(live, "in progress");
        new SnapshotChains(_store).PrepareMemory(_store.Get("d1"), CancellationToken.None);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(live));
    }

    [Fact]
    public void A_changed_parent_image_breaks_the_chain_with_SnapshotChainBroken()
    {
        var root = MakeRoot("root", 0x10);
        MakeDiff("d1", "root", 1, 0xA1);
        MakeDiff("d2", "d1", 2, 0xA2);
        var chains = new SnapshotChains(_store);
        chains.PrepareMemory(_store.Get("d2"), CancellationToken.None);

        using (var f = new FileStream(Path.Combine(root, SnapshotFiles.Memory), FileMode.Open, FileAccess.Write))
        {
            f.Position = 5 * Page;
            f.WriteByte(0xEE);
        }

        var ex = Assert.Throws<ForkdException>(() => chains.PrepareMemory(_store.Get("d2"), CancellationToken.None));
        Assert.Equal("SnapshotChainBroken", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.InvalidData, ex.Kind);
        Assert.Contains("'root' changed", ex.Message, StringComparison.Ordinal);
        Assert.NotNull(ex.Hint);
    }

    [Fact]
    public void A_missing_parent_breaks_the_chain()
    {
        MakeRoot("root", 0x10);
        var d1 = MakeDiff("d1", "root", 1, 0xA1);
        var meta = SnapshotMetadata.Load(d1) with { ParentTag = "gone" };
        meta.Save(d1);
        var ex = Assert.Throws<ForkdException>(() => new SnapshotChains(_store).PrepareMemory(_store.Get("d1"), CancellationToken.None));
        Assert.Equal("SnapshotChainBroken", ex.ErrorId);
    }

    [Fact]
    public void Removing_a_parent_with_dependents_is_refused_and_removing_them_too_goes_deepest_first()
    {
        MakeRoot("root", 0x10);
        MakeDiff("d1", "root", 1, 0xA1);
        MakeDiff("d2", "d1", 2, 0xA2);
        MakeDiff("side", "root", 3, 0xB1);
        var ex = Assert.Throws<ForkdException>(() => _store.Remove("d1"));
        Assert.Equal("SnapshotHasDependents", ex.ErrorId);
        Assert.Contains("d2", ex.Message, StringComparison.Ordinal);
        Assert.True(_store.Exists("d1"));

        Assert.Equal(["d2", "d1", "side"], _store.Dependents("root"));
        Assert.Equal(["d2", "d1"], _store.RemoveWithDependents("d1"));
        Assert.Equal(["root", "side"], _store.List().Select(s => s.Tag));
    }

    [Fact]
    public void A_diff_snapshot_is_complete_before_its_memory_is_assembled()
    {
        MakeRoot("root", 0x10);
        var d1 = MakeDiff("d1", "root", 1, 0xA1);
        Assert.False(File.Exists(Path.Combine(d1, SnapshotFiles.Memory)));
        Assert.True(_store.Get("d1").IsComplete);
        File.Delete(Path.Combine(d1, MemoryDiff.FileName));
        Assert.False(_store.Get("d1").IsComplete);
    }

    [Theory]
    [InlineData(0UL, false)] // not present
    [InlineData((1UL << 63) | (1UL << 61), false)] // present, still the file's page
    [InlineData(1UL << 63, true)] // present, private (written: copy-on-write)
    [InlineData(1UL << 62, true)] // swapped out (only private pages swap)
    public void Pagemap_bits_say_which_pages_a_child_wrote(ulong entry, bool written) =>
        Assert.Equal(written, GuestRam.IsWritten(entry));

    [Fact]
    public void A_checkpoint_vmstate_takes_the_parent_header_up_to_its_RAM_section()
    {
        // magic, version, configuration section, then QEMU_VM_SECTION_START (1), section id, "ram".
        byte[] header = [.. "QEVM"u8, 0, 0, 0, 3, 7, 0, 0, 0, 7, .. "microvm"u8];
        var parent = Path.Combine(_dir.Path, "vmstate");
        File.WriteAllBytes(parent, [.. header, 1, 0, 0, 0, 2, 3, .. "ram"u8, 0, 0, 0, 0]);
        Assert.Equal(header, QemuVmState.Header(parent, []));

        var devices = Path.Combine(_dir.Path, "devices");
        File.WriteAllBytes(devices, [.. "QEVM"u8, 0, 0, 0, 3, 4, 9, 9, 0x1f]);
        var composed = Path.Combine(_dir.Path, "composed");
        QemuVmState.Compose(header, devices, composed);
        var bytes = File.ReadAllBytes(composed);
        Assert.Equal([.. header, 4, 9, 9, 0x1f, 6, 0, 0, 0, 2, (byte)'{', (byte)'}'], bytes);

        // Our composed vmstate has no RAM section: its header length is recorded instead.
        Assert.Equal(header, QemuVmState.Header(composed, new JsonObject { [QemuVmState.HeaderBytesKey] = header.Length }));
        var ex = Assert.Throws<ForkdException>(() => QemuVmState.Header(composed, []));
        Assert.Equal("CheckpointFailed", ex.ErrorId);
    }
}
