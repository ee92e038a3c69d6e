using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Forkd.Core.Hub;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// Hostile and broken packs, crafted with python3's tarfile module and the zstd CLI (not with our
/// writer). Each must fail with its own ErrorId and leave no tag, no staging dir and no temp dir.
/// </summary>
public sealed class PackSafetyTests : IDisposable
{
    private const string Crafter = """
        import io, json, sys, tarfile
        spec = json.load(open(sys.argv[2]))
        with open(sys.argv[1], 'wb') as out:
            for e in spec:
                ti = tarfile.TarInfo(e['name'])
                data = bytes.fromhex(e.get('hex', ''))
                ti.mode = 0o644
                ti.mtime = 1700000000
                kind = e.get('type', 'file')
                ti.type = {'file': tarfile.REGTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE,
                           'chr': tarfile.CHRTYPE, 'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE, 'dir': tarfile.DIRTYPE}[kind]
                ti.linkname = e.get('link', '')
                ti.size = e.get('claim', len(data)) if kind == 'file' else 0
                out.write(ti.tobuf(format=tarfile.GNU_FORMAT))
                if kind == 'file':
                    out.write(data)
                    if 'claim' not in e:
                        out.write(b'\0' * ((512 - len(data) % 512) % 512))
            if not any('claim' in e for e in spec):
                out.write(b'\0' * 1024)
        """;

    private static readonly byte[] VmState = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
    private static readonly byte[] Memory = MakeMemory();
    private static readonly byte[] Json = Encoding.UTF8.GetBytes("{\n  \"vmstate\": \"/srv/forkd/snapshots/x/vmstate\",\n  \"memory\": \"/srv/forkd/snapshots/x/memory.bin\",\n  \"volumes\": []\n}");
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    private static byte[] MakeMemory()
    {
        var m = new byte[16384];
        m.AsSpan(8192, 100).Fill(7);
        return m;
    }

    private sealed record Entry(string Name, byte[]? Data = null, string Type = "file", string? Link = null, long? Claim = null);

    private static string Manifest(string tag = "good", int version = 1, IEnumerable<(string Name, byte[] Data)>? files = null, string? sizeOverride = null)
    {
        var sb = new StringBuilder().Append(CultureInfo.InvariantCulture, $"forkd_pack_version = {version}\ntag = \"{tag}\"\ncreated_at = \"2026-05-14T06:47:27Z\"\nforkd_version = \"0.1.3\"\n");
        foreach (var (name, data) in files ?? DefaultFiles())
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"\n[[files]]\npath = \"{name}\"\nsize = {sizeOverride ?? data.Length.ToString(CultureInfo.InvariantCulture)}\nsha256 = \"{Convert.ToHexStringLower(SHA256.HashData(data))}\"\n");
        }

        return sb.ToString();
    }

    private static IEnumerable<(string, byte[])> DefaultFiles() => [("snapshot.json", Json), ("vmstate", VmState), ("memory.bin", Memory)];

    private static List<Entry> GoodEntries(string? manifest = null) =>
    [
        new("manifest.toml", Encoding.UTF8.GetBytes(manifest ?? Manifest())),
        new("snapshot.json", Json),
        new("vmstate", VmState),
        new("memory.bin", Memory),
    ];

    private string Craft(IEnumerable<Entry> entries, string name = "crafted")
    {
        var script = Path.Combine(_box.Root, "craft.py");
        File.WriteAllText(script, Crafter);
        var spec = Path.Combine(_box.Root, name + ".json");
        File.WriteAllText(spec, JsonSerializer.Serialize(entries.Select(e => new Dictionary<string, object?>
        {
            ["name"] = e.Name,
            ["hex"] = Convert.ToHexStringLower(e.Data ?? []),
            ["type"] = e.Type,
            ["link"] = e.Link ?? "",
        }.Concat(e.Claim is { } c ? [new KeyValuePair<string, object?>("claim", c)] : []).ToDictionary())));
        var tar = Path.Combine(_box.Root, name + ".tar");
        HubSandbox.Sh($"python3 '{script}' '{tar}' '{spec}' && zstd -q -f -3 '{tar}' -o '{tar}.zst'");
        return tar + ".zst";
    }

    private ForkdException ImportFails(string pack, string? tag = null)
    {
        var ex = Assert.Throws<ForkdException>(() =>
        {
            using var stream = File.OpenRead(pack);
            new PackInstaller(_box.Paths).Import(stream, pack, null, new ImportOptions { Tag = tag }, null, default);
        });
        AssertNothingLeft();
        return ex;
    }

    private void AssertNothingLeft()
    {
        var snapshots = _box.Paths.SnapshotsDirectory;
        Assert.True(!Directory.Exists(snapshots) || Directory.GetFileSystemEntries(snapshots).Length == 0, "a tag was installed");
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
        Assert.False(File.Exists("/tmp/evil") || File.Exists(Path.Combine(_box.Root, "evil")), "an entry escaped");
    }

    [Fact]
    public void The_crafted_baseline_pack_imports()
    {
        var pack = Craft(GoodEntries());
        var snap = new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);
        Assert.Equal("good", snap.Tag);
        Assert.True(snap.IsComplete);
        Assert.DoesNotContain("/srv/forkd", File.ReadAllText(Path.Combine(snap.Path, "snapshot.json")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../evil", "PackUnsafeEntryName")]
    [InlineData("a/../../evil", "PackUnsafeEntryName")]
    [InlineData("/tmp/evil", "PackUnsafeEntryName")]
    [InlineData("sub/vmstate", "PackUnexpectedEntry")]
    [InlineData("rootfs.ext4", "PackUnexpectedEntry")]
    public void Entry_names_outside_the_manifest_or_the_directory_are_refused(string name, string errorId)
    {
        var entries = GoodEntries();
        entries.Insert(2, new Entry(name, [1, 2, 3]));
        Assert.Equal(errorId, ImportFails(Craft(entries)).ErrorId);
    }

    [Theory]
    [InlineData("symlink", 0)]
    [InlineData("symlink", 2)]
    [InlineData("hardlink", 3)]
    [InlineData("hardlink", 0)]
    public void Links_are_refused_wherever_they_appear(string type, int position)
    {
        var entries = GoodEntries();
        var target = entries[position].Name;
        entries[position] = new Entry(target, Type: type, Link: type == "symlink" ? "/etc/passwd" : "snapshot.json");
        Assert.Equal("PackLinkEntry", ImportFails(Craft(entries)).ErrorId);
    }

    [Theory]
    [InlineData("chr")]
    [InlineData("blk")]
    [InlineData("fifo")]
    [InlineData("dir")]
    public void Devices_fifos_and_directories_are_refused(string type)
    {
        var entries = GoodEntries();
        entries[2] = new Entry("vmstate", Type: type);
        Assert.Equal("PackSpecialEntry", ImportFails(Craft(entries)).ErrorId);
    }

    [Fact]
    public void A_second_manifest_is_refused() =>
        Assert.Equal("PackDuplicateEntry", ImportFails(Craft([.. GoodEntries(), new Entry("manifest.toml", Encoding.UTF8.GetBytes(Manifest("other")))])).ErrorId);

    [Fact]
    public void A_duplicate_data_file_is_refused() =>
        Assert.Equal("PackDuplicateEntry", ImportFails(Craft([.. GoodEntries(), new Entry("vmstate", VmState)])).ErrorId);

    [Fact]
    public void A_pack_without_manifest_is_refused() =>
        Assert.Equal("PackManifestMissing", ImportFails(Craft(GoodEntries().Skip(1))).ErrorId);

    [Fact]
    public void An_empty_archive_is_refused() =>
        Assert.Equal("PackManifestMissing", ImportFails(Craft([])).ErrorId);

    [Fact]
    public void A_newer_format_version_is_refused() =>
        Assert.Equal("PackVersionUnsupported", ImportFails(Craft(GoodEntries(Manifest(version: 3)))).ErrorId);

    [Fact]
    public void A_version_2_manifest_without_a_chain_is_refused() =>
        Assert.Equal("PackManifestInvalid", ImportFails(Craft(GoodEntries(Manifest(version: 2)))).ErrorId);

    [Fact]
    public void Version_zero_is_refused_too() =>
        Assert.Equal("PackVersionUnsupported", ImportFails(Craft(GoodEntries(Manifest(version: 0)))).ErrorId);

    [Theory]
    [InlineData("forkd_pack_version = 1\ntag = \"x\n")]
    [InlineData("forkd_pack_version = \"1\"\ntag = \"x\"\ncreated_at = \"t\"\nforkd_version = \"v\"\n")]
    [InlineData("forkd_pack_version = 1\ntag = 5\ncreated_at = \"t\"\nforkd_version = \"v\"\n")]
    [InlineData("forkd_pack_version = 1\ntag = \"x\"\ncreated_at = \"t\"\nforkd_version = \"v\"\n[[files]]\npath = \"vmstate\"\nsize = -1\nsha256 = \"00\"\n")]
    [InlineData("\u0000\u0001binary")]
    public void Bad_toml_or_wrong_types_are_refused(string manifest) =>
        Assert.Equal("PackManifestInvalid", ImportFails(Craft(GoodEntries(manifest))).ErrorId);

    [Theory]
    [InlineData("../../etc")]
    [InlineData("/etc/cron.d")]
    [InlineData(".hidden")]
    [InlineData("a/b")]
    public void A_hostile_tag_in_the_manifest_is_refused_unless_a_tag_is_given(string tag)
    {
        var pack = Craft(GoodEntries(Manifest(tag: tag)));
        Assert.Equal("PackManifestTagInvalid", ImportFails(pack).ErrorId);
        var snap = new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, new ImportOptions { Tag = "safe" }, null, default);
        Assert.Equal(_box.Paths.SnapshotDirectory("safe"), snap.Path);
    }

    [Fact]
    public void A_sha256_mismatch_is_refused()
    {
        var entries = GoodEntries();
        var tampered = (byte[])Memory.Clone();
        tampered[9000] ^= 0xFF;
        entries[3] = new Entry("memory.bin", tampered);
        Assert.Equal("PackIntegrityMismatch", ImportFails(Craft(entries)).ErrorId);
    }

    [Fact]
    public void A_truncated_zstd_stream_is_refused()
    {
        var pack = Craft(GoodEntries());
        var bytes = File.ReadAllBytes(pack);
        File.WriteAllBytes(pack, bytes[..(bytes.Length / 2)]);
        Assert.Equal("PackTruncated", ImportFails(pack).ErrorId);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("text")]
    [InlineData("tar")]
    [InlineData("empty")]
    public void A_file_that_is_not_zstd_is_refused(string kind)
    {
        var pack = Craft(GoodEntries());
        var tar = pack[..^4];
        var file = Path.Combine(_box.Root, "notzstd");
        switch (kind)
        {
            case "gzip": HubSandbox.Sh($"gzip -c '{tar}' > '{file}'"); break;
            case "text": File.WriteAllText(file, "<html>Access Denied</html>"); break;
            case "tar": File.Copy(tar, file); break;
            default: File.WriteAllBytes(file, []); break;
        }

        Assert.Equal("PackNotZstd", ImportFails(file).ErrorId);
    }

    [Fact]
    public void An_entry_larger_than_declared_is_refused_before_its_data_is_read()
    {
        // The header claims 64 GiB of memory.bin; only a few bytes follow. Reading on would either
        // fill the disk or end in "truncated": the reader must stop at the header.
        var entries = GoodEntries();
        entries[3] = new Entry("memory.bin", [1, 2, 3], Claim: 64L << 30);
        Assert.Equal("PackEntryTooLarge", ImportFails(Craft(entries)).ErrorId);
    }

    [Fact]
    public void An_entry_not_declared_in_the_manifest_is_refused()
    {
        var files = DefaultFiles().Where(f => f.Item1 != "snapshot.json");
        Assert.Equal("PackUnexpectedEntry", ImportFails(Craft(GoodEntries(Manifest(files: files)))).ErrorId);
    }

    [Fact]
    public void A_declared_file_missing_from_the_archive_is_refused() =>
        Assert.Equal("PackFileMissing", ImportFails(Craft(GoodEntries().Where(e => e.Name != "snapshot.json"))).ErrorId);

    [Fact]
    public void A_manifest_without_memory_is_refused() =>
        Assert.Equal("PackIncomplete", ImportFails(Craft(GoodEntries(Manifest(files: DefaultFiles().Where(f => f.Item1 != "memory.bin"))).Where(e => e.Name != "memory.bin"))).ErrorId);

    [Fact]
    public void An_existing_tag_is_not_replaced_without_force()
    {
        var pack = Craft(GoodEntries());
        HubSandbox.MakeSnapshot(_box.Paths, "good");
        var before = HubSandbox.Sha256(Path.Combine(_box.Paths.SnapshotDirectory("good"), "memory.bin"));
        var ex = Assert.Throws<ForkdException>(() => new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default));
        Assert.Equal("SnapshotExists", ex.ErrorId);
        Assert.Equal(before, HubSandbox.Sha256(Path.Combine(_box.Paths.SnapshotDirectory("good"), "memory.bin")));
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }
}
