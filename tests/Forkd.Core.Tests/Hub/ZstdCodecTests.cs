using Forkd.Core.Hub;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>The system libzstd and the managed ZstdSharp port must write and read the same packs.</summary>
[Collection("ZstdCodec")] // flips a process-wide switch; other tests work with either codec
public sealed class ZstdCodecTests : IDisposable
{
    private readonly HubSandbox _box = new();

    public void Dispose()
    {
        ZstdCodec.PreferNative = true;
        _box.Dispose();
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public async Task A_pack_written_by_one_codec_is_read_by_the_other(bool nativeWrites, bool nativeReads)
    {
        ZstdCodec.PreferNative = true;
        Assert.True(ZstdCodec.UsesNative, "libzstd.so.1 is missing: install the zstd package (tools/install-deps.sh does)");
        var source = HubSandbox.MakeSnapshot(_box.Paths, "codec", pages: 3000);
        var pack = Path.Combine(_box.Root, $"codec-{nativeWrites}.tar.zst");
        ZstdCodec.PreferNative = nativeWrites;
        await new PackWriter(_box.Paths).ExportAsync("codec", pack, new PackOptions(), null, default);
        ZstdCodec.PreferNative = nativeReads;
        var snap = new PackInstaller(_box.NewDataDir($"r{nativeWrites}{nativeReads}")).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);
        Assert.Equal(HubSandbox.Sha256(Path.Combine(source, "memory.bin")), HubSandbox.Sha256(Path.Combine(snap.Path, "memory.bin")));
        // and the zstd CLI reads what either wrote
        Assert.Contains("memory.bin", HubSandbox.Sh($"zstd -dc '{pack}' | tar -tf -"), StringComparison.Ordinal);
    }

    [Fact]
    public void Zero_frames_decode_to_zeros_with_the_cli()
    {
        var writer = new System.Buffers.ArrayBufferWriter<byte>();
        ZstdFrames.WriteZeroFrame(writer, (3 * ZstdFrames.MaxBlockSize) + 17);
        var file = Path.Combine(_box.Root, "zeros.zst");
        File.WriteAllBytes(file, writer.WrittenSpan.ToArray());
        Assert.Equal(((3 * ZstdFrames.MaxBlockSize) + 17).ToString(System.Globalization.CultureInfo.InvariantCulture),
            HubSandbox.Sh($"zstd -dc '{file}' | tr -d '\\000' | wc -c; zstd -dc '{file}' | wc -c").Split('\n')[1].Trim());
        Assert.Equal("0", HubSandbox.Sh($"zstd -dc '{file}' | tr -d '\\000' | wc -c").Trim());
    }
}
