using System.Text.Json;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Forkd.Core.Tests.Engine;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// Pack manifest v2 (forkd 0.5): a diff chain exported root to head with per-link prefixes, imported into another data
/// dir with every file and parent hash verified before anything is installed; local tags reused only by content hash;
/// a failed install leaves no link. Hostile packs are re-crafted from a real export with python3's tarfile and zstd.
/// The same round trip with real TCG children is in tests/Pester/Branch.Pack.Tests.ps1.
/// </summary>
public sealed class PackChainTests : IDisposable
{
    private static readonly byte[] HeadMarks = [0x10, 0xA1, 0xA2, 0x10, 0x10, 0x10, 0x10, 0x10];

    private const string Recrafter = """
        import io, json, re, subprocess, sys, tarfile, hashlib
        src, dst, spec = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
        raw = subprocess.run(['zstd', '-dc', src], check=True, capture_output=True).stdout
        members = []
        with tarfile.open(fileobj=io.BytesIO(raw)) as t:
            for m in t.getmembers():
                members.append([m.name, t.extractfile(m).read()])
        manifest = members[0][1].decode()
        out = []
        for name, data in members[1:]:
            if name in spec.get('drop', []):
                continue
            if name in spec.get('patch', {}):
                off, hexdata = spec['patch'][name]
                b = bytearray(data); new = bytes.fromhex(hexdata); b[off:off+len(new)] = new; data = bytes(b)
                block = re.compile(r'(path = "' + re.escape(name) + r'"\nsize = )\d+(\nsha256 = ")[0-9a-f]+(")')
                manifest = block.sub(lambda g: g.group(1) + str(len(data)) + g.group(2) + hashlib.sha256(data).hexdigest() + g.group(3), manifest)
            out.append([spec.get('rename', {}).get(name, name), data])
        for old, new in spec.get('manifest', []):
            assert old in manifest, old
            manifest = manifest.replace(old, new)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w', format=tarfile.GNU_FORMAT) as t:
            for name, data in [['manifest.toml', manifest.encode()]] + out:
                ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
                t.addfile(ti, io.BytesIO(data))
        subprocess.run(['zstd', '-q', '-f', '-3', '-o', dst], input=buf.getvalue(), check=True)
        """;

    private readonly ChainFixture _source = new();
    private readonly HubSandbox _box = new();

    public void Dispose()
    {
        _source.Dispose();
        _box.Dispose();
    }

    /// <summary>root -> d1 -> d2 in the source data dir, exported as one pack.</summary>
    private async Task<(string Pack, PackInfo Info)> ExportChain()
    {
        _source.MakeRoot("root", 0x10);
        _source.MakeDiff("d1", "root", 1, 0xA1);
        _source.MakeDiff("d2", "d1", 2, 0xA2);
        var pack = Path.Combine(_box.Root, "d2" + PackFormat.FileSuffix);
        var info = await new PackWriter(_source.Store.Paths).ExportAsync("d2", pack, new PackOptions(), null, CancellationToken.None);
        return (pack, info);
    }

    private SnapshotInfo Import(string pack, ImportOptions? options = null, SnapshotStore? into = null)
    {
        using var stream = File.OpenRead(pack);
        return new PackInstaller(into ?? new SnapshotStore(_box.Paths)).Import(stream, pack, null, options ?? new ImportOptions(), null, CancellationToken.None);
    }

    private ForkdException ImportFails(string pack, ImportOptions? options = null)
    {
        var ex = Assert.Throws<ForkdException>(() => Import(pack, options));
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
        return ex;
    }

    private static string Manifest(string pack)
    {
        using var stream = File.OpenRead(pack);
        using var zstd = new ZstdReadStream(stream, pack);
        var tar = new TarReader(zstd, pack);
        var entry = tar.Next()!;
        var bytes = new byte[entry.Size];
        tar.Read(bytes);
        return System.Text.Encoding.UTF8.GetString(bytes);
    }

    private string Recraft(string pack, object spec, string name)
    {
        var script = Path.Combine(_box.Root, "recraft.py");
        File.WriteAllText(script, Recrafter);
        var specFile = Path.Combine(_box.Root, name + ".json");
        File.WriteAllText(specFile, JsonSerializer.Serialize(spec));
        var output = Path.Combine(_box.Root, name + PackFormat.FileSuffix);
        HubSandbox.Sh($"python3 '{script}' '{pack}' '{output}' '{specFile}'");
        return output;
    }

    private List<string> Tags() => new SnapshotStore(_box.Paths).List().Select(s => s.Tag).ToList();

    [Fact]
    public async Task A_chain_exports_as_manifest_v2_and_imports_into_a_fresh_data_dir_with_the_head_state()
    {
        var (pack, info) = await ExportChain();
        Assert.Equal(2, info.FormatVersion);
        Assert.Equal(["root", "d1", "d2"], info.Chain);
        var manifest = Manifest(pack);
        Assert.StartsWith("forkd_pack_version = 2\ntag = \"d2\"\n", manifest, StringComparison.Ordinal);
        Assert.Contains("parent_tag = \"d1\"\n", manifest, StringComparison.Ordinal);
        Assert.Contains("[[chain]]\ntag = \"root\"\nprefix = \"root/\"\n\n[[chain]]\ntag = \"d1\"\nprefix = \"d1/\"\nparent_tag = \"root\"\nparent_content_hash = \"", manifest, StringComparison.Ordinal);
        Assert.Contains("path = \"root/memory.bin\"", manifest, StringComparison.Ordinal);
        Assert.Contains("path = \"d2/memory.diff\"", manifest, StringComparison.Ordinal);
        Assert.DoesNotContain("path = \"d1/memory.bin\"", manifest, StringComparison.Ordinal); // a cached image is never packed

        var head = Import(pack);
        Assert.Equal("d2", head.Tag);
        Assert.Equal(["d1", "d2", "root"], Tags());
        var store = new SnapshotStore(_box.Paths);
        Assert.Equal(HeadMarks, ChainFixture.PageMarks(store.PrepareChainMemory(store.Get("d2"), CancellationToken.None)));
        Assert.Equal("d1", store.Get("d2").Metadata.ParentTag);
    }

    [Fact]
    public async Task A_chain_pushes_to_and_pulls_from_a_hub_over_real_HTTP()
    {
        _source.MakeRoot("root", 0x10);
        _source.MakeDiff("d1", "root", 1, 0xA1);
        _source.MakeDiff("d2", "d1", 2, 0xA2);
        using var server = new TestHttpServer();
        using var client = new HubClient();
        var pushed = await client.PublishAsync(_source.Store.Paths, "d2", server.Url("/bucket/d2.forkd-snapshot.tar.zst"), new PackOptions(), null, CancellationToken.None);
        Assert.Equal(2, pushed.Pack.FormatVersion);
        var upload = Assert.Single(server.Uploads);
        server.Files["/bucket/d2.forkd-snapshot.tar.zst"] = upload.Body;

        var head = await client.PullAsync(new PackInstaller(_box.Paths), server.Url("/bucket/d2.forkd-snapshot.tar.zst"), new ImportOptions(), null, CancellationToken.None);
        Assert.Equal("d2", head.Tag);
        Assert.Equal(["d1", "d2", "root"], Tags());
        var store = new SnapshotStore(_box.Paths);
        Assert.Equal(HeadMarks, ChainFixture.PageMarks(store.PrepareChainMemory(store.Get("d2"), CancellationToken.None)));
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public async Task A_standalone_snapshot_still_exports_as_v1()
    {
        _source.MakeRoot("solo", 0x10);
        var pack = Path.Combine(_box.Root, "solo" + PackFormat.FileSuffix);
        var info = await new PackWriter(_source.Store.Paths).ExportAsync("solo", pack, new PackOptions(), null, CancellationToken.None);
        Assert.Equal(1, info.FormatVersion);
        var manifest = Manifest(pack);
        Assert.StartsWith("forkd_pack_version = 1\ntag = \"solo\"\n", manifest, StringComparison.Ordinal);
        Assert.DoesNotContain("chain", manifest, StringComparison.Ordinal);
        Assert.DoesNotContain("/", manifest.Split("\n").Where(l => l.StartsWith("path = ", StringComparison.Ordinal)).Aggregate("", string.Concat), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_local_ancestor_with_the_same_image_is_reused_and_one_with_another_is_refused_unless_renamed()
    {
        var (pack, _) = await ExportChain();
        {
            // Same root content here: reused as it is (its files untouched), the rest installed over it.
            HubFixtureRoot(_box.Paths, "root", 0x10);
            var rootInode = Forkd.Core.Host.NativeFile.Inode(Path.Combine(_box.Paths.SnapshotDirectory("root"), SnapshotFiles.VmState));
            Import(pack);
            Assert.Equal(["d1", "d2", "root"], Tags());
            Assert.Equal(rootInode, Forkd.Core.Host.NativeFile.Inode(Path.Combine(_box.Paths.SnapshotDirectory("root"), SnapshotFiles.VmState)));

            // Another root here: refused, nothing installed; with -ChainTagPrefix the ancestors get their own tags.
            var other = _box.NewDataDir("other");
            HubFixtureRoot(other, "root", 0x55);
            var otherStore = new SnapshotStore(other);
            var ex = Assert.Throws<ForkdException>(() => Import(pack, into: otherStore));
            Assert.Equal("PackChainTagConflict", ex.ErrorId);
            Assert.Contains("-ChainTagPrefix", ex.Hint, StringComparison.Ordinal);
            Assert.Equal(["root"], otherStore.List().Select(s => s.Tag));
            var head = Import(pack, new ImportOptions { ChainTagPrefix = "imp-", Tag = "head" }, otherStore);
            Assert.Equal(["head", "imp-d1", "imp-root", "root"], otherStore.List().Select(s => s.Tag));
            Assert.Equal("imp-d1", head.Metadata.ParentTag);
            Assert.Equal(HeadMarks, ChainFixture.PageMarks(otherStore.PrepareChainMemory(otherStore.Get("head"), CancellationToken.None)));
        }
    }

    private static void HubFixtureRoot(ForkdPaths paths, string tag, byte fill)
    {
        var dir = paths.SnapshotDirectory(tag);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.VmState), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.Memory), ChainFixture.Pages(ChainFixture.ImagePages, fill));
        new SnapshotMetadata { Backend = "qemu" }.Save(dir);
    }

    [Fact]
    public async Task A_failed_install_of_a_later_link_removes_the_links_this_import_installed()
    {
        var (pack, _) = await ExportChain();
        var store = new SnapshotStore(_box.Paths);
        var installer = new PackInstaller(store);
        var seen = new List<string>();
        installer.BeforeLinkInstall = tag =>
        {
            seen.Add(tag);
            if (tag == "d2")
            {
                HubFixtureRoot(_box.Paths, "d2", 0x66); // appears under the head's tag meanwhile: its install fails
            }
        };
        using (var stream = File.OpenRead(pack))
        {
            var ex = Assert.Throws<ForkdException>(() => installer.Import(stream, pack, null, new ImportOptions(), null, CancellationToken.None));
            Assert.Equal("SnapshotExists", ex.ErrorId);
        }

        Assert.Equal(["root", "d1", "d2"], seen); // root first
        Assert.Equal(["d2"], Tags()); // only the one planted; root and d1 were rolled back
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public async Task Force_over_a_head_tag_that_has_dependents_is_refused()
    {
        var (pack, _) = await ExportChain();
        Import(pack);
        HubFixtureRootDiff("over-d2", "d2");
        var ex = ImportFails(pack, new ImportOptions { Force = true });
        Assert.Equal("SnapshotHasDependents", ex.ErrorId);
    }

    private void HubFixtureRootDiff(string tag, string parent)
    {
        var store = new SnapshotStore(_box.Paths);
        var dir = _box.Paths.SnapshotDirectory(tag);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.VmState), [1]);
        MemoryDiff.Write(Path.Combine(dir, MemoryDiff.FileName), ChainFixture.ImagePages * ChainFixture.Page, [new DiffRun(4, ChainFixture.Pages(1, 0xC4))]);
        new SnapshotMetadata
        {
            Backend = "qemu",
            ParentTag = parent,
            ParentContentHash = MemoryImageHash.Compute(store.PrepareChainMemory(store.Get(parent), CancellationToken.None)),
            MemoryDiff = MemoryDiff.FileName,
        }.Save(dir);
    }

    public static TheoryData<string, string> HostileVariants() => new()
    {
        { "root image changed (parent hash mismatch)", "PackChainParentMismatch" },
        { "cycle: the root names the head as its parent", "PackChainBroken" },
        { "missing link", "PackChainBroken" },
        { "prefix with ..", "PackChainPrefixUnsafe" },
        { "absolute prefix", "PackChainPrefixUnsafe" },
        { "prefix is not the tag", "PackChainPrefixUnsafe" },
        { "duplicate tag", "PackChainDuplicateTag" },
        { "version 3", "PackVersionUnsupported" },
        { "link metadata names another parent", "PackChainBroken" },
        { "v1 pack of a diff", "PackChainBroken" },
    };

    [Theory]
    [MemberData(nameof(HostileVariants))]
    public async Task A_hostile_chain_pack_is_refused_with_its_ErrorId_and_installs_nothing(string variant, string errorId)
    {
        var (pack, _) = await ExportChain();
        var manifest = Manifest(pack);
        var d1Hash = System.Text.RegularExpressions.Regex.Match(manifest, "tag = \"d1\"\nprefix = \"d1/\"\nparent_tag = \"root\"\nparent_content_hash = \"([0-9a-f]{64})\"").Groups[1].Value;
        var d1Meta = File.ReadAllText(Path.Combine(_source.Store.Paths.SnapshotDirectory("d1"), SnapshotFiles.Metadata));
        object spec = variant switch
        {
            "root image changed (parent hash mismatch)" => new { patch = new Dictionary<string, object[]> { ["root/memory.bin"] = [5 * ChainFixture.Page, "ee"] } },
            "cycle: the root names the head as its parent" => new { manifest = new[] { new[] { "tag = \"root\"\nprefix = \"root/\"\n", $"tag = \"root\"\nprefix = \"root/\"\nparent_tag = \"d2\"\nparent_content_hash = \"{d1Hash}\"\n" } } },
            "missing link" => new { manifest = new[] { new[] { $"\n[[chain]]\ntag = \"d1\"\nprefix = \"d1/\"\nparent_tag = \"root\"\nparent_content_hash = \"{d1Hash}\"\n", "" } } },
            "prefix with .." => new { manifest = new[] { new[] { "prefix = \"d1/\"", "prefix = \"../d1/\"" } } },
            "absolute prefix" => new { manifest = new[] { new[] { "prefix = \"d1/\"", "prefix = \"/tmp/d1/\"" } } },
            "prefix is not the tag" => new { manifest = new[] { new[] { "prefix = \"d1/\"", "prefix = \"root/\"" } } },
            "duplicate tag" => new { manifest = new[] { new[] { "tag = \"d2\"\nprefix = \"d2/\"", "tag = \"d1\"\nprefix = \"d1/\"" } } },
            "version 3" => new { manifest = new[] { new[] { "forkd_pack_version = 2", "forkd_pack_version = 3" } } },
            "link metadata names another parent" => new { patch = new Dictionary<string, object[]> { ["d1/snapshot.json"] = [0, Convert.ToHexStringLower(System.Text.Encoding.UTF8.GetBytes(d1Meta.Replace("\"parent_tag\": \"root\"", "\"parent_tag\": \"rooX\"", StringComparison.Ordinal)))] } },
            "v1 pack of a diff" => new { },
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        var hostile = variant == "v1 pack of a diff" ? await V1PackOfADiff() : Recraft(pack, spec, "hostile");
        var ex = ImportFails(hostile);
        Assert.Equal(errorId, ex.ErrorId);
        Assert.Equal(errorId == "PackVersionUnsupported" ? ForkdErrorKind.NotSupported : ForkdErrorKind.InvalidData, ex.Kind);
        Assert.Empty(Tags());
    }

    /// <summary>A v1 pack whose snapshot.json is d1's (a diff over 'root', which the pack does not carry).</summary>
    private async Task<string> V1PackOfADiff()
    {
        var d1Meta = File.ReadAllBytes(Path.Combine(_source.Store.Paths.SnapshotDirectory("d1"), SnapshotFiles.Metadata));
        _source.MakeRoot("solo", 0x10);
        var solo = Path.Combine(_box.Root, "solo" + PackFormat.FileSuffix);
        await new PackWriter(_source.Store.Paths).ExportAsync("solo", solo, new PackOptions(), null, CancellationToken.None);
        return Recraft(solo, new { patch = new Dictionary<string, object[]> { ["snapshot.json"] = [0, Convert.ToHexStringLower(d1Meta)] } }, "v1diff");
    }
}
