using System.Globalization;

namespace Forkd.Core.Host;

/// <summary>
/// Which processes hold something inside a directory: an open file, a mapped file, their working
/// directory, or a bound Unix socket (listed in <c>/proc/net/unix</c> and matched by inode, because a
/// socket fd's link reads <c>socket:[inode]</c>, not a path). This is how a live VM's work dir is told
/// apart from a crashed one's; no process name or command line is trusted.
/// </summary>
public sealed class ProcessScanner
{
    private readonly string _procRoot;

    public ProcessScanner(string procRoot = "/proc")
    {
        _procRoot = procRoot;
    }

    /// <summary>A snapshot of every path held open by every readable process.</summary>
    public ProcessHoldings Scan()
    {
        var holdings = new List<(string Path, int Pid)>();
        var unreadable = new List<int>();
        IEnumerable<string> pidDirs;
        try
        {
            pidDirs = Directory.EnumerateDirectories(_procRoot).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ProcessHoldings.Unknown("cannot list " + _procRoot);
        }

        var socketPaths = ReadUnixSocketPaths();
        foreach (var dir in pidDirs)
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            if (!AddFds(dir, pid, socketPaths, holdings))
            {
                if (Directory.Exists(dir))
                {
                    unreadable.Add(pid); // exists but its fds are hidden from us
                }

                continue;
            }

            AddLink(Path.Combine(dir, "cwd"), pid, holdings);
            AddMaps(Path.Combine(dir, "maps"), pid, holdings);
        }

        return new ProcessHoldings(holdings, unreadable, null);
    }

    private static bool AddFds(string dir, int pid, Dictionary<string, string[]> socketPaths, List<(string, int)> holdings)
    {
        IEnumerable<string> fds;
        try
        {
            fds = Directory.EnumerateFileSystemEntries(Path.Combine(dir, "fd")).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        foreach (var fd in fds)
        {
            var target = ReadLink(fd);
            if (target is null)
            {
                continue;
            }

            if (target.StartsWith("socket:[", StringComparison.Ordinal) && target.EndsWith(']'))
            {
                var inode = target[8..^1];
                if (socketPaths.TryGetValue(inode, out var sockPaths))
                {
                    holdings.AddRange(sockPaths.Select(p => (p, pid)));
                }
            }
            else if (target.StartsWith('/'))
            {
                holdings.Add((StripDeleted(target), pid));
            }
        }

        return true;
    }

    private static void AddLink(string link, int pid, List<(string, int)> holdings)
    {
        var target = ReadLink(link);
        if (target is not null && target.StartsWith('/'))
        {
            holdings.Add((StripDeleted(target), pid));
        }
    }

    private static void AddMaps(string mapsFile, int pid, List<(string, int)> holdings)
    {
        try
        {
            foreach (var line in File.ReadLines(mapsFile))
            {
                var slash = line.IndexOf('/', StringComparison.Ordinal);
                if (slash > 0)
                {
                    holdings.Add((StripDeleted(line[slash..]), pid));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    // /proc/net/unix shows a socket's path as given to bind(), which may run through a symlink (TMPDIR=/link):
    // each is also resolved through its directory, so liveness compares canonical paths like every other holding.
    private Dictionary<string, string[]> ReadUnixSocketPaths()
    {
        var map = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var canonicalDirs = new Dictionary<string, string?>(StringComparer.Ordinal);
        try
        {
            // Num RefCount Protocol Flags Type St Inode Path
            foreach (var line in File.ReadLines(Path.Combine(_procRoot, "net", "unix")).Skip(1))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 8 && parts[7].StartsWith('/'))
                {
                    var dir = Path.GetDirectoryName(parts[7]) ?? "/";
                    if (!canonicalDirs.TryGetValue(dir, out var canonical))
                    {
                        canonical = DirectoryHandle.TryCanonical(dir);
                        canonicalDirs[dir] = canonical;
                    }

                    var resolved = canonical is null ? null : Path.Combine(canonical, Path.GetFileName(parts[7]));
                    map[parts[6]] = resolved is null || resolved == parts[7] ? [parts[7]] : [parts[7], resolved];
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return map;
    }

    private static string? ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string StripDeleted(string path) =>
        path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path[..^10] : path;
}

/// <summary>The result of one <see cref="ProcessScanner.Scan"/>.</summary>
public sealed class ProcessHoldings
{
    private readonly List<(string Path, int Pid)> _holdings;

    internal ProcessHoldings(List<(string Path, int Pid)> holdings, List<int> unreadablePids, string? unknownReason)
    {
        _holdings = holdings;
        UnreadablePids = unreadablePids;
        UnknownReason = unknownReason;
    }

    internal static ProcessHoldings Unknown(string reason) => new([], [], reason);

    /// <summary>Set when the process table itself could not be read: then everything counts as live.</summary>
    public string? UnknownReason { get; }

    /// <summary>Processes whose open files could not be read (other users' processes when not root).</summary>
    public IReadOnlyList<int> UnreadablePids { get; }

    /// <summary>Pids holding anything at or below <paramref name="directory"/> (component-wise prefix).</summary>
    public IReadOnlyList<int> PidsHolding(string directory)
    {
        var dir = Path.TrimEndingDirectorySeparator(directory);
        var pids = new SortedSet<int>();
        foreach (var (path, pid) in _holdings)
        {
            if (path.Length >= dir.Length && path.StartsWith(dir, StringComparison.Ordinal) &&
                (path.Length == dir.Length || path[dir.Length] == '/'))
            {
                pids.Add(pid);
            }
        }

        return [.. pids];
    }
}
