using System.Buffers;
using System.Runtime.InteropServices;
using ZstdSharp;
using ZstdSharp.Unsafe;

namespace Forkd.Core.Hub;

/// <summary>Compresses one independent zstd frame at a time.</summary>
internal interface IZstdFrameEncoder : IDisposable
{
    int Compress(ReadOnlySpan<byte> source, Span<byte> destination);
}

/// <summary>Streaming decoder; <see cref="OperationStatus.Done"/> means a frame ended exactly here.</summary>
internal interface IZstdStreamDecoder : IDisposable
{
    OperationStatus Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int consumed, out int written);
}

/// <summary>
/// Picks the zstd implementation: the system's libzstd (what the zstd CLI itself runs on; Debian's
/// <c>libzstd1</c>) when it loads, else the managed ZstdSharp port, which is 1.3–3× slower. Both write
/// and read the same format. <c>FORKD_ZSTD=managed</c> forces the managed one.
/// </summary>
public static class ZstdCodec
{
    private static readonly Lazy<bool> NativeLoads = new(() =>
        NativeLibrary.TryLoad(NativeZstd.Library, out var handle) && NativeLibrary.TryGetExport(handle, "ZSTD_compress2", out _));

    /// <summary>Tests flip this to run both implementations.</summary>
    public static bool PreferNative { get; set; } =
        !string.Equals(Environment.GetEnvironmentVariable("FORKD_ZSTD"), "managed", StringComparison.OrdinalIgnoreCase);

    public static bool UsesNative => PreferNative && NativeLoads.Value;

    /// <summary><c>libzstd</c> or <c>ZstdSharp</c>: which one this process uses.</summary>
    public static string Implementation => UsesNative ? "libzstd" : "ZstdSharp";

    /// <summary>
    /// Frames are independent (so they compress in parallel), which costs the history a single stream
    /// would carry across chunk boundaries. A window as large as a whole chunk (4 MiB; the zstd CLI uses
    /// 2 MiB at level 3) wins that back: packs come out no larger than <c>zstd -3</c>'s. Decoders accept up
    /// to 128 MiB windows by default, so every zstd reader still takes them.
    /// </summary>
    public const int WindowLog = 22;

    public static int CompressBound(int length) => length + (length >> 8) + 64 + (length < 128 * 1024 ? ((128 * 1024) - length) >> 11 : 0);

    internal static IZstdFrameEncoder CreateEncoder(int level) => UsesNative ? new NativeEncoder(level) : new ManagedEncoder(level);

    internal static IZstdStreamDecoder CreateDecoder() => UsesNative ? new NativeDecoder() : new ManagedDecoder();

    private sealed class ManagedEncoder : IZstdFrameEncoder
    {
        private readonly Compressor _compressor;

        public ManagedEncoder(int level)
        {
            _compressor = new Compressor(level);
            _compressor.SetParameter(ZSTD_cParameter.ZSTD_c_contentSizeFlag, 1);
            _compressor.SetParameter(ZSTD_cParameter.ZSTD_c_windowLog, WindowLog);
        }

        public int Compress(ReadOnlySpan<byte> source, Span<byte> destination) => _compressor.Wrap(source, destination);

        public void Dispose() => _compressor.Dispose();
    }

    private sealed class ManagedDecoder : IZstdStreamDecoder
    {
        private readonly Decompressor _decompressor = new();

        public OperationStatus Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int consumed, out int written)
        {
            try
            {
                return _decompressor.UnwrapStream(source, destination, out consumed, out written);
            }
            catch (ZstdException ex)
            {
                throw new InvalidDataException(ex.Message, ex);
            }
        }

        public void Dispose() => _decompressor.Dispose();
    }

    private sealed unsafe class NativeEncoder : IZstdFrameEncoder
    {
        private readonly nint _cctx;

        public NativeEncoder(int level)
        {
            _cctx = NativeZstd.ZSTD_createCCtx();
            if (_cctx == 0)
            {
                throw new InvalidOperationException("ZSTD_createCCtx failed");
            }

            NativeZstd.Check(NativeZstd.ZSTD_CCtx_setParameter(_cctx, 100, level)); // ZSTD_c_compressionLevel
            NativeZstd.Check(NativeZstd.ZSTD_CCtx_setParameter(_cctx, 200, 1));     // ZSTD_c_contentSizeFlag
            NativeZstd.Check(NativeZstd.ZSTD_CCtx_setParameter(_cctx, 101, WindowLog)); // ZSTD_c_windowLog
        }

        public int Compress(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            {
                return (int)NativeZstd.Check(NativeZstd.ZSTD_compress2(_cctx, dst, (nuint)destination.Length, src, (nuint)source.Length));
            }
        }

        public void Dispose() => NativeZstd.ZSTD_freeCCtx(_cctx);
    }

    private sealed unsafe class NativeDecoder : IZstdStreamDecoder
    {
        private readonly nint _dctx;

        public NativeDecoder()
        {
            _dctx = NativeZstd.ZSTD_createDStream();
            if (_dctx == 0)
            {
                throw new InvalidOperationException("ZSTD_createDStream failed");
            }

            NativeZstd.Check(NativeZstd.ZSTD_initDStream(_dctx));
        }

        public OperationStatus Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int consumed, out int written)
        {
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            {
                var input = new NativeZstd.Buffer { Data = src, Size = (nuint)source.Length, Pos = 0 };
                var output = new NativeZstd.Buffer { Data = dst, Size = (nuint)destination.Length, Pos = 0 };
                var result = NativeZstd.ZSTD_decompressStream(_dctx, &output, &input);
                if (NativeZstd.ZSTD_isError(result) != 0)
                {
                    throw new InvalidDataException(NativeZstd.ErrorName(result));
                }

                consumed = (int)input.Pos;
                written = (int)output.Pos;
                return result == 0 ? OperationStatus.Done
                    : output.Pos == output.Size ? OperationStatus.DestinationTooSmall
                    : OperationStatus.NeedMoreData;
            }
        }

        public void Dispose() => NativeZstd.ZSTD_freeDStream(_dctx);
    }
}

/// <summary>The handful of libzstd entry points the pack code needs (stable API since zstd 1.4).</summary>
internal static unsafe partial class NativeZstd
{
    public const string Library = "libzstd.so.1";

    [StructLayout(LayoutKind.Sequential)]
    public struct Buffer
    {
        public byte* Data;
        public nuint Size;
        public nuint Pos;
    }

    [LibraryImport(Library)]
    public static partial nint ZSTD_createCCtx();

    [LibraryImport(Library)]
    public static partial nuint ZSTD_freeCCtx(nint cctx);

    [LibraryImport(Library)]
    public static partial nuint ZSTD_CCtx_setParameter(nint cctx, int param, int value);

    [LibraryImport(Library)]
    public static partial nuint ZSTD_compress2(nint cctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize);

    [LibraryImport(Library)]
    public static partial nint ZSTD_createDStream();

    [LibraryImport(Library)]
    public static partial nuint ZSTD_freeDStream(nint dctx);

    [LibraryImport(Library)]
    public static partial nuint ZSTD_initDStream(nint dctx);

    [LibraryImport(Library)]
    public static partial nuint ZSTD_decompressStream(nint dctx, Buffer* output, Buffer* input);

    [LibraryImport(Library)]
    public static partial uint ZSTD_isError(nuint code);

    [LibraryImport(Library)]
    public static partial byte* ZSTD_getErrorName(nuint code);

    public static string ErrorName(nuint code) => Marshal.PtrToStringUTF8((nint)ZSTD_getErrorName(code)) ?? "zstd error";

    public static nuint Check(nuint code) =>
        ZSTD_isError(code) != 0 ? throw new InvalidOperationException("libzstd: " + ErrorName(code)) : code;
}
