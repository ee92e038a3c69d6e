using System.Runtime.InteropServices;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>The kernel interfaces of the Diff capture: PAGEMAP_SCAN (linux/fs.h) and process_vm_readv.</summary>
internal sealed unsafe partial class WrittenPageCopy
{
    /// <summary>_IOWR('f', 16, struct pm_scan_arg).</summary>
    private const ulong PagemapScan = 0xC0606610;
    private const ulong PageIsFile = 1 << 2, PageIsPresent = 1 << 3, PageIsSwapped = 1 << 4;

    [StructLayout(LayoutKind.Sequential)]
    private readonly struct IoVec(byte* address, nuint length)
    {
        public readonly byte* Address = address;
        public readonly nuint Length = length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PageRegion
    {
        public ulong Start;
        public ulong End;
        public ulong Categories;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PmScanArg
    {
        public ulong Size;
        public ulong Flags;
        public ulong Start;
        public ulong End;
        public ulong WalkEnd;
        public ulong Vec;
        public ulong VecLength;
        public ulong MaxPages;
        public ulong CategoryInverted;
        public ulong CategoryMask;
        public ulong CategoryAnyOfMask;
        public ulong ReturnMask;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, PmScanArg* arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, IoVec* localIov, nuint localCount, IoVec* remoteIov, nuint remoteCount, nuint flags);
}
