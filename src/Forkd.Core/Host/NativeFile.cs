using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>The few file facts .NET does not expose: allocated blocks, owner, effective uid.</summary>
public static unsafe class NativeFile
{
    /// <summary>Bytes a file really occupies (st_blocks × 512), without following a symlink. 0 when it cannot be read.</summary>
    public static long AllocatedBytes(string path)
    {
        return TryLstat(path, out var st) ? st.st_blocks * 512L : 0;
    }

    /// <summary>The owner uid of a path (not following symlinks), or -1.</summary>
    public static long OwnerUid(string path)
    {
        return TryLstat(path, out var st) ? st.st_uid : -1;
    }

    public static uint EffectiveUid => geteuid();

    /// <summary>The inode of a path (following symlinks), or -1.</summary>
    public static long Inode(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat buf;
        fixed (byte* p = bytes)
        {
            return LibC.stat(p, &buf) == 0 ? (long)(ulong)buf.st_ino : -1;
        }
    }

    private static bool TryLstat(string path, out stat st)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat buf;
        fixed (byte* p = bytes)
        {
            var rc = lstat(p, &buf);
            st = buf;
            return rc == 0;
        }
    }
}
