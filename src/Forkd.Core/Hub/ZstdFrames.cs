using System.Buffers;
using System.Buffers.Binary;

namespace Forkd.Core.Hub;

/// <summary>
/// Hand-built zstd frames (RFC 8878). A pack is a sequence of frames, which every zstd decoder reads
/// as one stream (<c>zstd -d</c>, libzstd, the Rust <c>zstd</c> crate forkd uses). Building the simple
/// ones by hand costs nothing: the manifest goes in a raw frame whose size is known before the file
/// hashes are, and runs of zero pages go in RLE frames instead of through the compressor.
/// </summary>
public static class ZstdFrames
{
    public const int MaxBlockSize = 128 * 1024;

    private static readonly byte[] Magic = [0x28, 0xB5, 0x2F, 0xFD];

    /// <summary>Exact size of <see cref="RawFrame"/> for <paramref name="contentLength"/> bytes.</summary>
    public static int RawFrameSize(int contentLength) =>
        4 + 1 + 4 + (Math.Max(1, (contentLength + MaxBlockSize - 1) / MaxBlockSize) * 3) + contentLength;

    /// <summary>A single-segment frame holding <paramref name="content"/> in raw (stored) blocks.</summary>
    public static byte[] RawFrame(ReadOnlySpan<byte> content)
    {
        var frame = new byte[RawFrameSize(content.Length)];
        Magic.CopyTo(frame, 0);
        frame[4] = 0xA0; // FCS field 4 bytes, single segment, no checksum, no dictionary
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(5), (uint)content.Length);
        var pos = 9;
        var offset = 0;
        do
        {
            var n = Math.Min(MaxBlockSize, content.Length - offset);
            var last = offset + n == content.Length;
            WriteBlockHeader(frame.AsSpan(pos), last, blockType: 0, n);
            pos += 3;
            content.Slice(offset, n).CopyTo(frame.AsSpan(pos));
            pos += n;
            offset += n;
        }
        while (offset < content.Length);

        return frame;
    }

    /// <summary>Writes a frame that decodes to <paramref name="length"/> zero bytes, as RLE blocks (4 bytes per 128 KiB).</summary>
    public static void WriteZeroFrame(IBufferWriter<byte> output, long length)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (length <= 0)
        {
            return;
        }

        var header = output.GetSpan(14);
        Magic.CopyTo(header);
        header[4] = 0xC0;  // FCS field 8 bytes, multi-segment (window descriptor follows)
        header[5] = 0x38;  // window 128 KiB (log 17): keeps the decoder's buffer small whatever the run length
        BinaryPrimitives.WriteUInt64LittleEndian(header[6..], (ulong)length);
        output.Advance(14);
        while (length > 0)
        {
            var n = (int)Math.Min(MaxBlockSize, length);
            length -= n;
            var block = output.GetSpan(4);
            WriteBlockHeader(block, last: length == 0, blockType: 1, n);
            block[3] = 0;
            output.Advance(4);
        }
    }

    private static void WriteBlockHeader(Span<byte> dest, bool last, int blockType, int size)
    {
        var value = (last ? 1 : 0) | (blockType << 1) | (size << 3);
        dest[0] = (byte)value;
        dest[1] = (byte)(value >> 8);
        dest[2] = (byte)(value >> 16);
    }

    /// <summary>True when the bytes start a zstd frame (or a skippable frame).</summary>
    public static bool HasZstdMagic(ReadOnlySpan<byte> start) =>
        start.Length >= 4 && (start[..4].SequenceEqual(Magic) ||
                              (start[1] == 0x2A && start[2] == 0x4D && start[3] == 0x18 && (start[0] & 0xF0) == 0x50));
}

/// <summary>
/// Decompresses a zstd stream (one or many frames) and, unlike a plain decoder, tells a stream that
/// stops inside a frame (a truncated download) apart from one that ends cleanly.
/// </summary>
public sealed class ZstdReadStream : Stream
{
    private readonly Stream _source;
    private readonly string _name;
    private readonly IZstdStreamDecoder _decompressor = ZstdCodec.CreateDecoder();
    private readonly byte[] _input = new byte[256 * 1024];
    private int _inPos;
    private int _inLen;
    private bool _sourceEof;
    private bool _frameDone;

    public ZstdReadStream(Stream source, string name)
    {
        _source = source;
        _name = name;
        var got = 0;
        while (got < 4)
        {
            var n = _source.Read(_input, got, _input.Length - got);
            if (n == 0)
            {
                _sourceEof = true;
                break;
            }

            got += n;
        }

        _inLen = got;
        if (!ZstdFrames.HasZstdMagic(_input.AsSpan(0, got)))
        {
            throw new ForkdException("PackNotZstd", ForkdErrorKind.InvalidData,
                $"{name} is not a forkd pack: {Guess(_input.AsSpan(0, got))}", name)
            {
                Hint = "A pack is a zstd-compressed tar file (.forkd-snapshot.tar.zst) made by Export-ForkdPack or forkd pack.",
            };
        }
    }

    /// <summary>Compressed bytes consumed so far.</summary>
    public long CompressedBytesRead { get; private set; }

    private static string Guess(ReadOnlySpan<byte> start)
    {
        if (start.Length == 0)
        {
            return "the file is empty";
        }

        if (start.Length >= 2 && start[0] == 0x1F && start[1] == 0x8B)
        {
            return "it is gzip-compressed, not zstd-compressed";
        }

        if (start.Length >= 4 && start[0] == 0xFD && start[1] == 0x37 && start[2] == 0x7A && start[3] == 0x58)
        {
            return "it is xz-compressed, not zstd-compressed";
        }

        return "it does not start with the zstd magic number (28 B5 2F FD)";
    }

    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0)
        {
            return 0;
        }

        while (true)
        {
            if (_inPos == _inLen && !_sourceEof)
            {
                _inLen = _source.Read(_input, 0, _input.Length);
                _inPos = 0;
                _sourceEof = _inLen == 0;
            }

            OperationStatus status;
            int consumed, written;
            try
            {
                status = _decompressor.Decode(_input.AsSpan(_inPos, _inLen - _inPos), buffer, out consumed, out written);
            }
            catch (InvalidDataException ex)
            {
                throw new ForkdException("PackCorrupt", ForkdErrorKind.InvalidData,
                    $"pack {_name} is damaged: the zstd stream cannot be decoded ({ex.Message})", _name, ex)
                {
                    Hint = "Fetch the pack again; if it keeps failing, ask the publisher to re-export it.",
                };
            }

            _inPos += consumed;
            CompressedBytesRead += consumed;
            if (status == OperationStatus.Done)
            {
                _frameDone = true;
            }
            else if (consumed > 0 || written > 0)
            {
                _frameDone = false;
            }

            if (written > 0)
            {
                return written;
            }

            if (_inPos == _inLen && _sourceEof)
            {
                if (_frameDone)
                {
                    return 0;
                }

                throw new ForkdException("PackTruncated", ForkdErrorKind.InvalidData,
                    $"pack {_name} is truncated: the zstd stream stops inside a frame", _name)
                {
                    Hint = "The download or copy was probably cut short; fetch the pack again.",
                };
            }
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _decompressor.Dispose();
        }

        base.Dispose(disposing);
    }
}
