using System.Buffers.Binary;
using System.Diagnostics;
using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>The LZ4 legacy decoder against streams written by the reference lz4 CLI, and the bzImage header walk.</summary>
public sealed class KernelExtractorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("forkd-test-lz4-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Compresses with <c>lz4 -l</c> (legacy frames, as the kernel build does) and appends the size like the kernel's size_append.</summary>
    private async Task<byte[]> Lz4LegacyAsync(byte[] data)
    {
        var input = Path.Combine(_dir, "in");
        var output = Path.Combine(_dir, "in.lz4");
        await File.WriteAllBytesAsync(input, data);
        using var p = Process.Start(new ProcessStartInfo("lz4", ["-l", "-9", "-f", "-q", input, output]) { RedirectStandardError = true })!;
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());
        var compressed = await File.ReadAllBytesAsync(output);
        var withSize = new byte[compressed.Length + 4];
        compressed.CopyTo(withSize, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(withSize.AsSpan(compressed.Length), (uint)data.Length);
        return withSize;
    }

    private static byte[] SampleData(int length)
    {
        // Compressible but not trivial: text-like runs mixed with random bytes.
        var data = new byte[length];
        var random = new Random(42);
        for (var i = 0; i < length; i++)
        {
            data[i] = (i / 4096 % 3) == 0 ? (byte)random.Next(256) : (byte)('a' + (i % 23));
        }

        return data;
    }

    [Fact]
    public async Task A_multi_block_stream_from_the_lz4_cli_decodes_to_the_original()
    {
        var data = SampleData((8 << 20) * 2 + 12345); // three 8 MiB legacy blocks

        var decoded = KernelExtractor.DecodeLz4Legacy(await Lz4LegacyAsync(data));

        Assert.Equal(data, decoded);
    }

    [Fact]
    public async Task A_bzImage_shaped_file_yields_its_ELF_payload()
    {
        var elf = SampleData(300_000);
        new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F' }.CopyTo(elf, 0);
        var payload = await Lz4LegacyAsync(elf);
        const int SetupSects = 3;
        const int PayloadOffset = 0x1000;
        var image = new byte[(SetupSects + 1) * 512 + PayloadOffset + payload.Length + 64];
        image[0x1F1] = SetupSects;
        "HdrS"u8.CopyTo(image.AsSpan(0x202));
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x248), PayloadOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x24C), (uint)payload.Length);
        payload.CopyTo(image, (SetupSects + 1) * 512 + PayloadOffset);

        var vmlinux = KernelExtractor.ExtractVmlinux(image);

        Assert.Equal(elf, vmlinux);
    }

    [Fact]
    public void A_file_without_the_setup_header_is_InvalidKernelImage()
    {
        var ex = Assert.Throws<ForkdException>(() => KernelExtractor.ExtractVmlinux(new byte[4096], "junk"));

        Assert.Equal("InvalidKernelImage", ex.ErrorId);
    }

    [Fact]
    public void A_payload_in_another_format_is_InvalidKernelImage()
    {
        var gzipMagic = new byte[] { 0x1F, 0x8B, 8, 0, 0, 0, 0, 0 };

        var ex = Assert.Throws<ForkdException>(() => KernelExtractor.DecodeLz4Legacy(gzipMagic));

        Assert.Equal("InvalidKernelImage", ex.ErrorId);
        Assert.Contains("not LZ4", ex.Message);
    }
}
