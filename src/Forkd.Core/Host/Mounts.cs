using System.Text;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// Mount points below a directory. A chroot build (mmdebstrap mounts /proc, /sys and /dev inside its
/// tree) that is killed can leave them mounted; deleting the tree then would descend into the host's
/// /dev. So a build tree is detached from every mount before it is deleted.
/// </summary>
public static unsafe class Mounts
{
    /// <summary>Mount points at or below <paramref name="directory"/>, deepest first.</summary>
    public static IReadOnlyList<string> Under(string directory)
    {
        var prefix = Path.GetFullPath(directory).TrimEnd('/');
        var result = new List<string>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            // Field 5 is the mount point, with spaces and the like written as octal escapes.
            var fields = line.Split(' ');
            if (fields.Length < 5)
            {
                continue;
            }

            var point = Unescape(fields[4]);
            if (point == prefix || point.StartsWith(prefix + "/", StringComparison.Ordinal))
            {
                result.Add(point);
            }
        }

        return [.. result.OrderByDescending(p => p.Length)];
    }

    /// <summary>Lazily detaches every mount below <paramref name="directory"/>; returns how many.</summary>
    public static int DetachAllUnder(string directory)
    {
        var count = 0;
        foreach (var point in Under(directory))
        {
            var bytes = Encoding.UTF8.GetBytes(point + "\0");
            fixed (byte* p = bytes)
            {
                if (umount2(p, MNT_DETACH) == 0)
                {
                    count++;
                }
            }
        }

        return count;
    }

    private static string Unescape(string s)
    {
        if (!s.Contains('\\', StringComparison.Ordinal))
        {
            return s;
        }

        var sb = new StringBuilder();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 3 < s.Length)
            {
                sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(s[i]);
            }
        }

        return sb.ToString();
    }
}
