using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Forkd.Core.Host;
using Forkd.Core.Hub;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>The declared total is checked against -MaxSize and free space before a byte is written; zeros stay holes.</summary>
public sealed class PackLimitTests : IDisposable
{
    private static readonly byte[] VmState = RandomNumberGenerator.GetBytes(300);
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>A pack whose manifest declares memory.bin as <paramref name="declared"/> bytes; the data holds <paramref name="memory"/>.</summary>
    private string Pack(long declared, byte[] memory, bool stopAfterManifest)
    {
        var manifest = new StringBuilder("forkd_pack_version = 1\ntag = \"big\"\ncreated_at = \"2026-05-14T06:47:27Z\"\nforkd_version = \"0.1.3\"\n");
        manifest.Append(CultureInfo.InvariantCulture, $"\n[[files]]\npath = \"vmstate\"\nsize = {VmState.Length}\nsha256 = \"{Convert.ToHexStringLower(SHA256.HashData(VmState))}\"\n");
        manifest.Append(CultureInfo.InvariantCulture, $"\n[[files]]\npath = \"memory.bin\"\nsize = {declared}\nsha256 = \"{Convert.ToHexStringLower(SHA256.HashData(memory))}\"\n");
        var tar = Path.Combine(_box.Root, "limit-" + Guid.NewGuid().ToString("N")[..6] + ".tar");
        using (var file = File.Create(tar))
        {
            var w = new GnuTarTestWriter(file);
            w.AddFile("manifest.toml", Encoding.UTF8.GetBytes(manifest.ToString()));
            if (!stopAfterManifest)
            {
                w.AddFile("vmstate", VmState);
                w.AddFile("memory.bin", memory);
                w.End();
            }
        }

        HubSandbox.Sh($"zstd -q -f -3 '{tar}' -o '{tar}.zst'");
        return tar + ".zst";
    }

    private ForkdException Refused(string pack, ImportOptions options)
    {
        var ex = Assert.Throws<ForkdException>(() => new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, options, null, default));
        Assert.True(!Directory.Exists(_box.Paths.SnapshotsDirectory) || Directory.GetFileSystemEntries(_box.Paths.SnapshotsDirectory).Length == 0);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
        return ex;
    }

    [Theory]
    [InlineData(70L << 30, null)] // 70 GiB against the 64 GiB default
    [InlineData(2L << 20, 1L << 20)] // 2 MiB against -MaxSize 1 MiB
    public void A_pack_declaring_more_than_the_limit_is_refused_before_any_data(long declared, long? maxSize)
    {
        // The archive ends right after the manifest: a refusal that read further would say PackTruncated.
        var pack = Pack(declared, new byte[16], stopAfterManifest: true);
        var ex = Refused(pack, maxSize is { } m ? new ImportOptions { MaxSize = m } : new ImportOptions());
        Assert.Equal("PackTooLarge", ex.ErrorId);
        Assert.Contains("-MaxSize", ex.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pack_declaring_more_than_the_free_space_is_refused_before_any_data()
    {
        var free = new DriveInfo(_box.Root).AvailableFreeSpace;
        var pack = Pack(free + (1L << 30), new byte[16], stopAfterManifest: true);
        var ex = Refused(pack, new ImportOptions { MaxSize = long.MaxValue });
        Assert.Equal("PackInsufficientSpace", ex.ErrorId);
    }

    [Fact]
    public void An_entry_larger_than_the_manifest_declares_is_refused_from_its_header()
    {
        var pack = Pack(64 * 1024, new byte[256 * 1024], stopAfterManifest: false);
        Assert.Equal("PackEntryTooLarge", Refused(pack, new ImportOptions()).ErrorId);
    }

    [Fact]
    public void A_small_pack_of_zeros_installs_its_declared_size_as_holes()
    {
        var memory = new byte[128 << 20];
        memory[12345] = 1;
        var pack = Pack(memory.Length, memory, stopAfterManifest: false);
        Assert.True(new FileInfo(pack).Length < 64 * 1024, "128 MiB of zeros should pack into a few KiB");
        var snap = new PackInstaller(_box.Paths).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);
        var file = Path.Combine(snap.Path, "memory.bin");
        Assert.Equal(memory.Length, new FileInfo(file).Length);
        Assert.True(NativeFile.AllocatedBytes(file) < 1 << 20, $"memory.bin occupies {NativeFile.AllocatedBytes(file)} bytes");
    }
}
