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

    /// <summary>
    /// Makes <paramref name="destination"/> a hard link to <paramref name="source"/> when both are on one file
    /// system, else a copy. For immutable images (root disks): no second gigabyte on disk, same bytes either way.
    /// Returns true when it linked.
    /// </summary>
    public static bool LinkOrCopy(string source, string destination)
    {
        var from = Encoding.UTF8.GetBytes(source + "\0");
        var to = Encoding.UTF8.GetBytes(destination + "\0");
        fixed (byte* f = from)
        fixed (byte* t = to)
        {
            if (link(f, t) == 0)
            {
                return true;
            }
        }

        File.Copy(source, destination);
        return false;
    }

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

    /// <summary>
    /// True when <paramref name="path"/> itself (not followed) is the regular file open as <paramref name="handle"/>:
    /// no link at the name, and not replaced since it was opened.
    /// </summary>
    public static bool IsSameRegularFile(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (!TryLstat(path, out var named) || (named.st_mode & 0xF000) != 0x8000)
        {
            return false;
        }

        stat opened;
        var ok = false;
        handle.DangerousAddRef(ref ok);
        try
        {
            if (LibC.fstat((int)handle.DangerousGetHandle(), &opened) != 0)
            {
                return false;
            }
        }
        finally
        {
            if (ok)
            {
                handle.DangerousRelease();
            }
        }

        return opened.st_dev == named.st_dev && opened.st_ino == named.st_ino;
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
