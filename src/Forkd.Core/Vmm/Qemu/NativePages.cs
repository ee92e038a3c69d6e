using System.Buffers;
using System.Runtime.InteropServices;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// Page-aligned memory outside the GC heap, faulted in when made. The Diff capture's destination lives here: tens to
/// hundreds of MiB in the GC heap started a background collection that shared the two cores with the pause's copy.
/// </summary>
internal sealed unsafe class NativePages : MemoryManager<byte>
{
    private byte* _pointer;

    public NativePages(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Length = length;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, 4096);
        for (var i = 0; i < length; i += 4096)
        {
            _pointer[i] = 0; // fault it in now, not in the pause
        }
    }

    public int Length { get; }

    public byte* Pointer => _pointer != null ? _pointer : throw new ObjectDisposedException(nameof(NativePages));

    public override Span<byte> GetSpan() => new(Pointer, Length);

    public override MemoryHandle Pin(int elementIndex = 0) => new(Pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
