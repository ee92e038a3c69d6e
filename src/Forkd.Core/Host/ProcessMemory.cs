using System.Globalization;

namespace Forkd.Core.Host;

/// <summary>
/// Memory of one VMM process, split the way fork-from-warm is judged: pages of the guest-RAM mapping
/// (the snapshot's memory file) that became private to this child, versus the whole process (which
/// adds the VMM's own overhead, e.g. TCG's translation cache).
/// </summary>
public sealed record ProcessMemory(long GuestRamPrivateBytes, long GuestRamPssBytes, long GuestRamRssBytes, long ProcessPrivateBytes, long ProcessPssBytes)
{
    /// <summary>Reads <c>/proc/&lt;pid&gt;/smaps</c> (mappings of <paramref name="mappedFile"/>) and <c>smaps_rollup</c>.</summary>
    public static ProcessMemory Measure(int pid, string mappedFile, string procRoot = "/proc")
    {
        var dir = Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture));
        long ramPrivate = 0, ramPss = 0, ramRss = 0;
        var inMapping = false;
        foreach (var line in File.ReadLines(Path.Combine(dir, "smaps")))
        {
            if (IsMappingHeader(line, out var path))
            {
                inMapping = string.Equals(path, mappedFile, StringComparison.Ordinal);
                continue;
            }

            if (!inMapping)
            {
                continue;
            }

            if (TryField(line, "Private_Clean:", out var v) || TryField(line, "Private_Dirty:", out v))
            {
                ramPrivate += v;
            }
            else if (TryField(line, "Pss:", out v))
            {
                ramPss += v;
            }
            else if (TryField(line, "Rss:", out v))
            {
                ramRss += v;
            }
        }

        long totalPrivate = 0, totalPss = 0;
        foreach (var line in File.ReadLines(Path.Combine(dir, "smaps_rollup")))
        {
            if (TryField(line, "Private_Clean:", out var v) || TryField(line, "Private_Dirty:", out v))
            {
                totalPrivate += v;
            }
            else if (TryField(line, "Pss:", out v))
            {
                totalPss += v;
            }
        }

        return new ProcessMemory(ramPrivate, ramPss, ramRss, totalPrivate, totalPss);
    }

    // "7f..-7f.. rw-p 00000000 fd:01 1234   /path/to/file" — a header has a hex range and permissions; field lines end in "kB".
    private static bool IsMappingHeader(string line, out string? path)
    {
        path = null;
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0 || line.IndexOf('-', StringComparison.Ordinal) is var dash && (dash <= 0 || dash > space) || line.EndsWith(" kB", StringComparison.Ordinal))
        {
            return false;
        }

        var slash = line.IndexOf('/', StringComparison.Ordinal);
        path = slash > 0 ? line[slash..].TrimEnd() : null;
        if (path is not null && path.EndsWith(" (deleted)", StringComparison.Ordinal))
        {
            path = path[..^10];
        }

        return true;
    }

    private static bool TryField(string line, string name, out long bytes)
    {
        bytes = 0;
        if (!line.StartsWith(name, StringComparison.Ordinal))
        {
            return false;
        }

        var text = line[name.Length..].Trim();
        if (text.EndsWith("kB", StringComparison.Ordinal))
        {
            text = text[..^2].Trim();
        }

        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
        {
            return false;
        }

        bytes = kb * 1024;
        return true;
    }
}
