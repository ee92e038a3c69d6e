using System.Buffers.Binary;
using K4os.Compression.LZ4;

namespace Forkd.Core.Guest;

/// <summary>
/// Turns Debian's bzImage (LZ4 payload) into the ELF <c>vmlinux</c> that QEMU <c>-M microvm</c>
/// (PVH entry) and Firecracker boot directly. The payload is located through the x86 boot
/// protocol setup header and decoded with K4os.Compression.LZ4 (LZ4 "legacy" frames).
/// </summary>
public static class KernelExtractor
{
    private const int SetupSectsOffset = 0x1F1;
    private const int HeaderMagicOffset = 0x202; // "HdrS"
    private const int PayloadOffsetField = 0x248;
    private const int PayloadLengthField = 0x24C;
    private const uint Lz4LegacyMagic = 0x184C2102;
    private const int Lz4LegacyBlockSize = 8 << 20;
    private static readonly byte[] ElfMagic = [0x7F, (byte)'E', (byte)'L', (byte)'F'];

    /// <summary>Returns the vmlinux bytes for a bzImage, or throws InvalidKernelImage.</summary>
    public static byte[] ExtractVmlinux(ReadOnlySpan<byte> bzImage, string source = "bzImage")
    {
        if (bzImage.Length < 0x250 || !bzImage.Slice(HeaderMagicOffset, 4).SequenceEqual("HdrS"u8))
        {
            throw Invalid(source, "not an x86 bzImage (no HdrS setup header)");
        }

        int setupSects = bzImage[SetupSectsOffset] == 0 ? 4 : bzImage[SetupSectsOffset];
        long start = (setupSects + 1) * 512L + BinaryPrimitives.ReadUInt32LittleEndian(bzImage[PayloadOffsetField..]);
        long length = BinaryPrimitives.ReadUInt32LittleEndian(bzImage[PayloadLengthField..]);
        if (start + length > bzImage.Length || length < 8)
        {
            throw Invalid(source, $"payload {start}+{length} lies outside the {bzImage.Length}-byte file");
        }

        var elf = DecodeLz4Legacy(bzImage.Slice((int)start, (int)length), source);
        if (elf.Length < 4 || !elf.AsSpan(0, 4).SequenceEqual(ElfMagic))
        {
            throw Invalid(source, "the decompressed payload is not an ELF file");
        }

        return elf;
    }

    /// <summary>
    /// Decodes an LZ4 legacy stream: a magic number, then blocks of (uint32 size, data), each
    /// expanding to at most 8 MiB. The kernel build appends the uncompressed size (4 bytes) after
    /// the last block; a size field that runs past the end, or 4 trailing bytes, ends the stream.
    /// </summary>
    public static byte[] DecodeLz4Legacy(ReadOnlySpan<byte> input, string source = "lz4 stream")
    {
        if (input.Length < 4 || BinaryPrimitives.ReadUInt32LittleEndian(input) != Lz4LegacyMagic)
        {
            throw Invalid(source, "payload is not LZ4 (legacy frame); this kernel is built with another compressor");
        }

        using var output = new MemoryStream();
        var block = new byte[Lz4LegacyBlockSize];
        var pos = 4;
        while (input.Length - pos > 4)
        {
            var size = BinaryPrimitives.ReadUInt32LittleEndian(input[pos..]);
            if (size == Lz4LegacyMagic)
            {
                pos += 4; // concatenated streams repeat the magic
                continue;
            }

            if (size == 0 || size > input.Length - pos - 4)
            {
                break;
            }

            var decoded = LZ4Codec.Decode(input.Slice(pos + 4, (int)size), block);
            if (decoded < 0)
            {
                throw Invalid(source, $"corrupt LZ4 block at offset {pos}");
            }

            output.Write(block, 0, decoded);
            pos += 4 + (int)size;
        }

        return output.ToArray();
    }

    private static ForkdException Invalid(string source, string why) =>
        new("InvalidKernelImage", ForkdErrorKind.InvalidData, $"{source}: {why}", source);
}
