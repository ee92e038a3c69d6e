using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forkd.Core.Host;
using Forkd.Core.Hub;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// GNU sparse members (forkd packs memory.bin through the Rust tar crate, which writes old GNU 'S'
/// entries): packs written by real GNU tar --sparse in each format it has, and by an independent writer,
/// import byte for byte with their holes kept; a bad map is refused from the headers.
/// </summary>
public sealed class SparsePackTests : IDisposable
{
    private const int MemorySize = 8 * 1024 * 1024;
    private static readonly byte[] VmState = RandomNumberGenerator.GetBytes(700);
    private static readonly byte[] Json = Encoding.UTF8.GetBytes("{\n  \"vmstate\": \"/srv/forkd/snapshots/s/vmstate\",\n  \"memory\": \"/srv/forkd/snapshots/s/memory.bin\",\n  \"volumes\": []\n}");
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>30 data ranges (more than the 4 an old GNU header holds, so extension blocks are needed) in 8 MiB of holes.</summary>
    private static List<(long Offset, long Length)> DataRanges() =>
        [.. Enumerable.Range(0, 30).Select(i => ((long)(i * 65536) + 16384, (long)(4096 * (1 + (i % 3)))))];

    private static byte[] Content(IEnumerable<(long Offset, long Length)> ranges, int size = MemorySize)
    {
        var content = new byte[size];
        var rng = new Random(7);
        foreach (var (offset, length) in ranges)
        {
            rng.NextBytes(content.AsSpan((int)offset, (int)length));
        }

        return content;
    }

    private static string Manifest(params (string Name, byte[] Data, long? Size)[] files)
    {
        var sb = new StringBuilder("forkd_pack_version = 1\ntag = \"sparse\"\ncreated_at = \"2026-05-14T06:47:27Z\"\nforkd_version = \"0.1.3\"\n");
        foreach (var (name, data, size) in files)
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"\n[[files]]\npath = \"{name}\"\nsize = {size ?? data.Length}\nsha256 = \"{Convert.ToHexStringLower(SHA256.HashData(data))}\"\n");
        }

        return sb.ToString();
    }

    /// <summary>Writes the files into a directory, memory.bin as a real sparse file (seek past the holes).</summary>
    private string StageFiles(byte[] memory, IEnumerable<(long Offset, long Length)> ranges)
    {
        var dir = Path.Combine(_box.Root, "src-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "manifest.toml"), Manifest(("snapshot.json", Json, null), ("vmstate", VmState, null), ("memory.bin", memory, null)));
        File.WriteAllBytes(Path.Combine(dir, "snapshot.json"), Json);
        File.WriteAllBytes(Path.Combine(dir, "vmstate"), VmState);
        using (var f = new FileStream(Path.Combine(dir, "memory.bin"), FileMode.CreateNew))
        {
            foreach (var (offset, length) in ranges)
            {
                f.Position = offset;
                f.Write(memory, (int)offset, (int)length);
            }

            f.SetLength(memory.Length);
        }

        Assert.True(NativeFile.AllocatedBytes(Path.Combine(dir, "memory.bin")) < memory.Length / 2, "the source memory.bin is not sparse on this file system");
        return dir;
    }

    private Forkd.Core.Store.SnapshotInfo Import(string pack) =>
        new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);

    private static void AssertSameWithHoles(byte[] expected, string file)
    {
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(expected)), HubSandbox.Sha256(file));
        Assert.Equal(expected.Length, new FileInfo(file).Length);
        var allocated = NativeFile.AllocatedBytes(file);
        Assert.True(allocated <= 1024 * 1024, $"memory.bin occupies {allocated} bytes of {expected.Length}: its holes were filled");
    }

    [Theory]
    [InlineData("--format=gnu --sparse")]
    [InlineData("--format=posix --sparse --sparse-version=0.0")]
    [InlineData("--format=posix --sparse --sparse-version=0.1")]
    [InlineData("--format=posix --sparse --sparse-version=1.0")]
    public void A_pack_written_by_GNU_tar_with_sparse_imports_byte_for_byte_with_its_holes(string tarFlags)
    {
        var ranges = DataRanges();
        var memory = Content(ranges);
        var dir = StageFiles(memory, ranges);
        var pack = Path.Combine(_box.Root, "gnu.tar.zst");
        HubSandbox.Sh($"tar {tarFlags} -cf - manifest.toml snapshot.json vmstate memory.bin | zstd -q -3 -o '{pack}'", dir);
        var listing = HubSandbox.Sh($"zstd -dc '{pack}' | tar -tvf - --sparse");
        Assert.Contains("memory.bin", listing, StringComparison.Ordinal);

        var snap = Import(pack);
        AssertSameWithHoles(memory, Path.Combine(snap.Path, "memory.bin"));
        Assert.Equal(VmState, File.ReadAllBytes(Path.Combine(snap.Path, "vmstate")));
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public void The_GNU_tar_packs_really_are_sparse_members()
    {
        var ranges = DataRanges();
        var dir = StageFiles(Content(ranges), ranges);
        HubSandbox.Sh("tar --format=gnu --sparse -cf gnu.tar memory.bin && tar --format=posix --sparse --sparse-version=1.0 -cf pax.tar memory.bin", dir);
        Assert.Equal((byte)'S', File.ReadAllBytes(Path.Combine(dir, "gnu.tar"))[156]); // old GNU sparse type in the first header
        Assert.True(new FileInfo(Path.Combine(dir, "gnu.tar")).Length < MemorySize / 4);
        Assert.Contains("GNU.sparse.realsize=8388608", Encoding.ASCII.GetString(File.ReadAllBytes(Path.Combine(dir, "pax.tar"))), StringComparison.Ordinal);
    }

    private string WriteIndependent(Action<GnuTarTestWriter> memoryEntry, byte[] memory, long? declaredMemorySize = null)
    {
        var tar = Path.Combine(_box.Root, "indep-" + Guid.NewGuid().ToString("N")[..6] + ".tar");
        using (var file = File.Create(tar))
        {
            var w = new GnuTarTestWriter(file);
            w.AddFile("manifest.toml", Encoding.UTF8.GetBytes(Manifest(("snapshot.json", Json, null), ("vmstate", VmState, null), ("memory.bin", memory, declaredMemorySize))));
            w.AddFile("snapshot.json", Json);
            w.AddFile("vmstate", VmState);
            memoryEntry(w);
        }

        HubSandbox.Sh($"zstd -q -f -3 '{tar}' -o '{tar}.zst'");
        return tar + ".zst";
    }

    [Fact]
    public void A_pack_from_an_independent_old_GNU_writer_imports_byte_for_byte_with_its_holes()
    {
        var ranges = DataRanges();
        var memory = Content(ranges);
        var pack = WriteIndependent(w =>
        {
            w.AddSparse("memory.bin", memory, [.. ranges, (MemorySize, 0)]); // GNU tar ends its maps with an empty range at the end
            w.End();
        }, memory);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(memory)),
            HubSandbox.Sh($"mkdir -p '{_box.Root}/gnu-x' && zstd -dc '{pack}' | tar -xf - -C '{_box.Root}/gnu-x' && sha256sum '{_box.Root}/gnu-x/memory.bin' | cut -d' ' -f1").Trim());
        var snap = Import(pack);
        AssertSameWithHoles(memory, Path.Combine(snap.Path, "memory.bin"));
    }

    public static TheoryData<string, string> BadMaps() => new()
    {
        { "overlapping", "PackSparseMapInvalid" },
        { "unsorted", "PackSparseMapInvalid" },
        { "beyond-real-size", "PackSparseMapInvalid" },
        { "stored-mismatch", "PackSparseMapInvalid" },
        { "real-size-beyond-declared", "PackEntryTooLarge" },
        { "negative-real-size", "PackCorrupt" },
    };

    [Theory]
    [MemberData(nameof(BadMaps))]
    public void A_bad_sparse_map_is_refused_from_its_headers_before_any_data(string kind, string errorId)
    {
        var memory = Content([(0, 8192), (65536, 4096)], 131072);
        List<(long, long)> map = kind switch
        {
            "overlapping" => [(0, 8192), (4096, 4096)],
            "unsorted" => [(65536, 4096), (0, 8192)],
            "beyond-real-size" => [(0, 8192), (126976, 8192)],
            _ => [(0, 8192), (65536, 4096)],
        };
        foreach (var omitData in new[] { false, true })
        {
            var pack = WriteIndependent(w =>
            {
                w.AddSparse("memory.bin", memory, map,
                    realSize: kind == "real-size-beyond-declared" ? 1L << 40 : null,
                    storedOverride: kind == "stored-mismatch" ? 8192 + 4096 + 512 : null,
                    omitData: omitData);
                if (!omitData)
                {
                    w.End();
                }
            }, memory);
            if (kind == "negative-real-size")
            {
                // A base-256 field with the sign bit set: forged by hand in the header bytes.
                pack = ForgeNegativeRealSize(pack);
            }

            var ex = Assert.Throws<ForkdException>(() => Import(pack));
            Assert.Equal(errorId, ex.ErrorId);
            Assert.True(!Directory.Exists(_box.Paths.SnapshotsDirectory) || Directory.GetFileSystemEntries(_box.Paths.SnapshotsDirectory).Length == 0);
            Assert.Empty(HubSandbox.Leftovers(_box.Paths));
        }
    }

    private string ForgeNegativeRealSize(string pack)
    {
        var tar = Path.Combine(_box.Root, "forged.tar");
        HubSandbox.Sh($"zstd -dc '{pack}' > '{tar}'");
        var bytes = File.ReadAllBytes(tar);
        var header = FindHeader(bytes, "memory.bin");
        bytes[header + 483] = 0xFF;
        bytes.AsSpan(header + 148, 8).Fill((byte)' ');
        var sum = bytes.AsSpan(header, 512).ToArray().Sum(b => (long)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(bytes, header + 148);
        File.WriteAllBytes(tar, bytes);
        HubSandbox.Sh($"zstd -q -f -3 '{tar}' -o '{tar}.zst'");
        return tar + ".zst";
    }

    private static int FindHeader(byte[] tar, string name)
    {
        for (var at = 0; at < tar.Length; at += 512)
        {
            if (tar.AsSpan(at, name.Length).SequenceEqual(Encoding.ASCII.GetBytes(name)) && tar[at + name.Length] == 0)
            {
                return at;
            }
        }

        throw new InvalidOperationException("no header for " + name);
    }
}
