using System.Globalization;
using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>What <c>lstat</c>/<c>fstat</c> says about one entry: enough to tell a directory from a link and to pin it by identity.</summary>
public readonly record struct EntryFacts(ulong Device, ulong Inode, uint Mode, long OwnerUid)
{
    public bool IsDirectory => (Mode & (uint)S_IFMT) == (uint)S_IFDIR;

    public bool IsSymlink => (Mode & (uint)S_IFMT) == (uint)S_IFLNK;

    public bool IsRegularFile => (Mode & (uint)S_IFMT) == (uint)S_IFREG;
}

/// <summary>
/// An open directory (<c>O_DIRECTORY</c>). Everything below it is reached with <c>openat</c>/<c>unlinkat</c>
/// relative to this handle and without following links, so renaming a directory or swapping one for a
/// symlink elsewhere in the path cannot redirect what it reads or deletes (the coreutils <c>rm -r</c> and
/// systemd <c>rm_rf_children</c> way).
/// </summary>
public sealed unsafe class DirectoryHandle : IDisposable
{
    private int _fd;

    private DirectoryHandle(int fd, EntryFacts facts)
    {
        _fd = fd;
        Facts = facts;
    }

    /// <summary>Identity of the directory as it was opened.</summary>
    public EntryFacts Facts { get; }

    /// <summary>The directory's canonical path as the kernel sees it (no symlinks, no <c>..</c>).</summary>
    public string CanonicalPath =>
        new FileInfo($"/proc/self/fd/{_fd.ToString(CultureInfo.InvariantCulture)}").LinkTarget
        ?? throw new IOException("cannot read the path of an open directory");

    /// <summary>Opens a directory by path. A symlinked path is followed only when <paramref name="followLinks"/> is set (roots the user configured).</summary>
    public static DirectoryHandle Open(string path, bool followLinks = true)
    {
        var fd = OpenAt(AT_FDCWD, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (followLinks ? 0 : O_NOFOLLOW));
        if (fd < 0)
        {
            throw Error(errno, path);
        }

        return Wrap(fd, path);
    }

    /// <summary>mkdir that fails when the name exists (unlike Directory.CreateDirectory): a name planted in a shared temp dir is never adopted.</summary>
    public static void CreateNew(string path, UnixFileMode mode)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            if (mkdirat(AT_FDCWD, p, (ushort)mode) != 0)
            {
                throw Error(errno, path);
            }
        }
    }

    /// <summary>The canonical path of an existing directory, or null when it cannot be opened.</summary>
    public static string? TryCanonical(string path)
    {
        try
        {
            using var dir = Open(path);
            return dir.CanonicalPath;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Opens the subdirectory <paramref name="name"/> without following a link; null when it is not a directory (or a link).</summary>
    public DirectoryHandle? OpenChild(string name)
    {
        CheckName(name);
        var fd = OpenAt(_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
        {
            var err = errno;
            return err == ELOOP || err == ENOTDIR || err == ENOENT ? null : throw Error(err, name);
        }

        return Wrap(fd, name);
    }

    /// <summary>lstat of one entry (links not followed), or null when it does not exist.</summary>
    public EntryFacts? Stat(string name)
    {
        CheckName(name);
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        stat st;
        fixed (byte* p = bytes)
        {
            if (fstatat(_fd, p, &st, AT_SYMLINK_NOFOLLOW) != 0)
            {
                var err = errno;
                return err == ENOENT ? null : throw Error(err, name);
            }
        }

        return FactsOf(st);
    }

    /// <summary>Names in this directory, read through the open handle (never through a path that could be swapped).</summary>
    public IReadOnlyList<string> Names()
    {
        var self = $"/proc/self/fd/{_fd.ToString(CultureInfo.InvariantCulture)}";
        return [.. Directory.EnumerateFileSystemEntries(self).Select(Path.GetFileName).OfType<string>()];
    }

    /// <summary>unlink (or rmdir with <paramref name="directory"/>) of one entry; false when it was already gone.</summary>
    public bool Unlink(string name, bool directory)
    {
        CheckName(name);
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = bytes)
        {
            if (unlinkat(_fd, p, directory ? AT_REMOVEDIR : 0) == 0)
            {
                return true;
            }
        }

        var err = errno;
        return err == ENOENT ? false : throw Error(err, name);
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            _ = close(_fd);
            _fd = -1;
        }
    }

    internal static EntryFacts FactsOf(stat st) => new((ulong)st.st_dev, (ulong)st.st_ino, (uint)st.st_mode, (long)(uint)st.st_uid);

    private static DirectoryHandle Wrap(int fd, string what)
    {
        stat st;
        if (fstat(fd, &st) != 0)
        {
            var err = errno;
            _ = close(fd);
            throw Error(err, what);
        }

        return new DirectoryHandle(fd, FactsOf(st));
    }

    private static int OpenAt(int dirFd, string name, int flags)
    {
        var bytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = bytes)
        {
            return openat(dirFd, p, flags, 0);
        }
    }

    // One path component only: a name with '/' would let openat walk (and follow links) through the middle.
    private static void CheckName(string name)
    {
        if (name.Length == 0 || name.Contains('/', StringComparison.Ordinal) || name is "." or "..")
        {
            throw new ArgumentException($"'{name}' is not a single directory entry name", nameof(name));
        }
    }

    internal static Exception Error(int err, string what)
    {
        var message = $"{what}: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(err)} (errno {err.ToString(CultureInfo.InvariantCulture)})";
        return err == EACCES || err == EPERM ? new UnauthorizedAccessException(message) : new IOException(message, err);
    }
}
