using System.Text;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// Copy-on-write file copies (reflinks) through the <c>FICLONE</c> ioctl. A clone shares every block
/// with its source until one of them writes, so a per-child disk costs nothing up front. Only some
/// filesystems can do it (btrfs, XFS with reflink=1, bcachefs; not ext4).
/// </summary>
public static class FileClone
{
    // _IOW(0x94, 9, int) from linux/fs.h.
    private const int FICLONE = 0x40049409;

    /// <summary>Makes <paramref name="destination"/> a reflink of <paramref name="source"/>. False (and no file left) when the filesystem cannot.</summary>
    public static bool TryReflink(string source, string destination)
    {
        using var src = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var created = false;
        try
        {
            using (var dst = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                created = true;
                var rc = ioctl((int)dst.SafeFileHandle.DangerousGetHandle(), FICLONE, (int)src.SafeFileHandle.DangerousGetHandle());
                if (rc == 0)
                {
                    return true;
                }
            }

            File.Delete(destination);
            return false;
        }
        catch
        {
            if (created)
            {
                File.Delete(destination);
            }

            throw;
        }
    }

    /// <summary>Whether files in <paramref name="directory"/> can be reflinked (tries it on a small scratch file).</summary>
    public static bool Supported(string directory)
    {
        var probe = Path.Combine(directory, ".forkd-reflink-probe-" + Environment.ProcessId);
        var clone = probe + ".clone";
        try
        {
            File.WriteAllBytes(probe, Encoding.ASCII.GetBytes(new string('x', 4096)));
            return TryReflink(probe, clone);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
        finally
        {
            File.Delete(clone);
            File.Delete(probe);
        }
    }
}
