using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// Reads and writes of small data-dir files (registry records, lock owner notes, metadata) that never
/// follow a symlink: a link planted at the name is refused on read and replaced (not written through)
/// on write. Writes go to a uniquely named temp file and are renamed into place, so a crash leaves
/// either the old or the new content, and a temp file that names its writer's pid.
/// </summary>
public static unsafe class SafeFile
{
    /// <summary>Larger than any record or metadata file forkd writes; a bigger "record" is not one of ours.</summary>
    public const int DefaultMaxBytes = 4 * 1024 * 1024;

    private const string TempSuffix = ".tmp";

    /// <summary>Reads a regular file without following a link at its name. Throws FileNotFoundException when absent.</summary>
    public static string ReadAllTextNoFollow(string path, int maxBytes = DefaultMaxBytes)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = bytes)
        {
            // O_NONBLOCK: a FIFO planted at the name must not hang us; it is refused below as not a regular file.
            fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0);
        }

        if (fd < 0)
        {
            var err = errno;
            if (err == ENOENT)
            {
                throw new FileNotFoundException($"{path} does not exist", path);
            }

            throw err == ELOOP
                ? new IOException($"{path} is a symbolic link; forkd does not follow links in its data directory")
                : DirectoryHandle.Error(err, path);
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        Tmds.Linux.stat st;
        if (fstat(fd, &st) != 0 || !DirectoryHandle.FactsOf(st).IsRegularFile)
        {
            throw new IOException($"{path} is not a regular file");
        }

        if ((long)st.st_size > maxBytes)
        {
            throw new IOException($"{path} is larger than {maxBytes} bytes; not a file forkd wrote");
        }

        using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var buffer = new char[maxBytes + 1];
        var read = reader.ReadBlock(buffer, 0, buffer.Length);
        return read > maxBytes ? throw new IOException($"{path} grew past {maxBytes} bytes while read") : new string(buffer, 0, read);
    }

    /// <summary>
    /// <see cref="ReadAllTextNoFollow"/> for a data-dir file whose damage is the caller's data error: null when absent
    /// (no entry at all), else its text; a link, FIFO or oversized file is <paramref name="errorId"/> (InvalidData).
    /// </summary>
    public static string? ReadDataFile(string path, string errorId, int maxBytes = DefaultMaxBytes)
    {
        try
        {
            return ReadAllTextNoFollow(path, maxBytes);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (IOException ex)
        {
            throw new ForkdException(errorId, ForkdErrorKind.InvalidData, $"cannot read {path}: {ex.Message}", path, ex);
        }
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> (mode 0600) by writing a fresh temp
    /// file (O_EXCL|O_NOFOLLOW) and renaming it over the name: a link at the name is replaced, its target untouched.
    /// </summary>
    public static void WriteAtomicNoFollow(string path, string content)
    {
        var temp = TempNameFor(path);
        var bytes = Encoding.UTF8.GetBytes(temp + "\0");
        int fd;
        fixed (byte* p = bytes)
        {
            fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0x180 /* 0600 */);
        }

        if (fd < 0)
        {
            throw DirectoryHandle.Error(errno, temp);
        }

        try
        {
            using (var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 0))
            {
                stream.Write(Encoding.UTF8.GetBytes(content));
            }

            File.Move(temp, path, overwrite: true); // rename(2): replaces the entry itself, never writes through a link
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary><c>&lt;path&gt;.&lt;writer pid&gt;-&lt;8 hex&gt;.tmp</c>: unique per write, and names who may still be writing it.</summary>
    public static string TempNameFor(string path) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{path}.{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}{TempSuffix}");

    /// <summary>
    /// Deletes temp files in <paramref name="directory"/> left by writers that died: ours name a pid that is no
    /// longer alive; older unnamed ones (<c>x.tmp</c>) once they are <paramref name="unnamedAfter"/> old. Returns how many.
    /// </summary>
    public static int RemoveAbandonedTemps(string directory, TimeSpan unnamedAfter, string procRoot = "/proc")
    {
        var removed = 0;
        IEnumerable<string> temps;
        try
        {
            temps = Directory.EnumerateFiles(directory, "*" + TempSuffix).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return 0;
        }

        foreach (var temp in temps)
        {
            var writer = WriterPid(Path.GetFileName(temp));
            var abandoned = writer is { } pid
                ? !ProcessControl.IsAlive(pid, procRoot)
                : DateTime.UtcNow - File.GetLastWriteTimeUtc(temp) > unnamedAfter;
            if (abandoned && TryDelete(temp))
            {
                removed++;
            }
        }

        return removed;
    }

    internal static int? WriterPid(string fileName)
    {
        if (!fileName.EndsWith(TempSuffix, StringComparison.Ordinal))
        {
            return null;
        }

        var stem = fileName[..^TempSuffix.Length];
        var dot = stem.LastIndexOf('.');
        var dash = stem.LastIndexOf('-');
        if (dot < 0 || dash < dot || stem.Length - dash != 9)
        {
            return null;
        }

        return int.TryParse(stem[(dot + 1)..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
    }

    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
