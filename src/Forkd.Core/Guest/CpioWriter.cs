using System.Globalization;
using System.Text;

namespace Forkd.Core.Guest;

/// <summary>
/// Writes a "newc" cpio archive, the format the Linux kernel unpacks as an initramfs.
/// Every entry is owned by root; device nodes need no privileges to write (they are only
/// headers), which is why the image has a <c>/dev/console</c> without the builder being root.
/// </summary>
public sealed class CpioWriter : IDisposable
{
    public const int TypeDirectory = 0x4000;
    public const int TypeRegular = 0x8000;
    public const int TypeSymlink = 0xA000;
    public const int TypeCharDevice = 0x2000;

    private readonly Stream _output;
    private readonly bool _leaveOpen;
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private long _position;
    private int _nextInode = 1;
    private bool _finished;

    public CpioWriter(Stream output, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(output);
        _output = output;
        _leaveOpen = leaveOpen;
    }

    public IReadOnlyCollection<string> Names => _names;

    public void AddDirectory(string name, int permissions, long mtime) =>
        WriteEntry(name, TypeDirectory | (permissions & 0xFFF), mtime, ReadOnlySpan<byte>.Empty, nlink: 2);

    public void AddFile(string name, int permissions, long mtime, ReadOnlySpan<byte> content) =>
        WriteEntry(name, TypeRegular | (permissions & 0xFFF), mtime, content);

    public void AddSymlink(string name, string target, long mtime) =>
        WriteEntry(name, TypeSymlink | 0x1FF, mtime, Encoding.UTF8.GetBytes(target));

    public void AddCharDevice(string name, int permissions, long mtime, int major, int minor) =>
        WriteEntry(name, TypeCharDevice | (permissions & 0xFFF), mtime, ReadOnlySpan<byte>.Empty, rdevMajor: major, rdevMinor: minor);

    /// <summary>
    /// Adds a directory tree (not its root) under <paramref name="prefix"/>, in ordinal name order.
    /// Symlinks are stored as links; hard links become separate files. With <paramref name="fixedMtime"/>
    /// every entry gets that time, so the same tree content always gives the same bytes.
    /// </summary>
    public void AddTree(string root, string prefix = "", long? fixedMtime = 0)
    {
        foreach (var entry in new DirectoryInfo(root).EnumerateFileSystemInfos().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            var name = prefix.Length == 0 ? entry.Name : prefix + "/" + entry.Name;
            var mtime = fixedMtime ?? new DateTimeOffset(entry.LastWriteTimeUtc).ToUnixTimeSeconds();
            if (entry.LinkTarget is { } target)
            {
                AddSymlink(name, target, mtime);
            }
            else if (entry is DirectoryInfo dir)
            {
                AddDirectory(name, (int)dir.UnixFileMode, mtime);
                AddTree(dir.FullName, name, fixedMtime);
            }
            else if (entry is FileInfo file)
            {
                AddFile(name, (int)file.UnixFileMode, mtime, File.ReadAllBytes(file.FullName));
            }
        }
    }

    /// <summary>Writes the trailer. The archive is complete only after this.</summary>
    public void Finish()
    {
        if (_finished)
        {
            return;
        }

        WriteEntry("TRAILER!!!", 0, 0, ReadOnlySpan<byte>.Empty, nlink: 1, inode: 0);
        // Pad to a 512-byte multiple like cpio(1) does; the kernel ignores trailing zeros.
        var pad = (int)((512 - (_position % 512)) % 512);
        _output.Write(new byte[pad]);
        _position += pad;
        _output.Flush();
        _finished = true;
    }

    private void WriteEntry(string name, int mode, long mtime, ReadOnlySpan<byte> data, int nlink = 1,
        int rdevMajor = 0, int rdevMinor = 0, int? inode = null)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        if (name.Length == 0 || name.StartsWith('/') || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"bad cpio entry name '{name}'", nameof(name));
        }

        if (!_names.Add(name) && inode is null)
        {
            throw new ArgumentException($"duplicate cpio entry '{name}'", nameof(name));
        }

        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var header = new StringBuilder(110);
        header.Append("070701");
        foreach (var field in new long[]
        {
            inode ?? _nextInode++, mode, 0, 0, nlink, Math.Clamp(mtime, 0, uint.MaxValue), data.Length,
            0, 0, rdevMajor, rdevMinor, nameBytes.Length, 0,
        })
        {
            header.Append(((uint)field).ToString("x8", CultureInfo.InvariantCulture));
        }

        Write(Encoding.ASCII.GetBytes(header.ToString()));
        Write(nameBytes);
        Align4();
        Write(data);
        Align4();
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        _output.Write(bytes);
        _position += bytes.Length;
    }

    private void Align4()
    {
        var pad = (int)((4 - (_position % 4)) % 4);
        if (pad > 0)
        {
            Write(stackalloc byte[pad]);
        }
    }

    public void Dispose()
    {
        if (!_leaveOpen)
        {
            _output.Dispose();
        }
    }
}
