namespace Forkd.Core.Host;

/// <summary>
/// Recursive delete that cannot be redirected: every entry is removed relative to an open handle on its
/// directory (<c>openat</c>/<c>unlinkat</c>, links never followed), a link is removed as a link, and the walk
/// never crosses into another file system (a mount point is left alone and reported). Swapping a directory
/// for a symlink mid-delete therefore only makes us unlink that symlink.
/// </summary>
public static class SafeDelete
{
    private const int Attempts = 5;

    /// <summary>Deletes a file, link or directory tree. Missing paths are fine.</summary>
    public static void Delete(string path)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        var parent = Path.GetDirectoryName(full);
        var name = Path.GetFileName(full);
        if (parent is null || name.Length == 0)
        {
            throw new IOException($"refusing to delete the root directory '{full}'");
        }

        DirectoryHandle parentHandle;
        try
        {
            parentHandle = DirectoryHandle.Open(parent);
        }
        catch (IOException) when (!Directory.Exists(parent))
        {
            return;
        }

        using (parentHandle)
        {
            DeleteEntry(parentHandle, name);
        }
    }

    /// <summary>Deletes the entry <paramref name="name"/> of an open directory, and everything below it.</summary>
    public static void DeleteEntry(DirectoryHandle parent, string name)
    {
        ArgumentNullException.ThrowIfNull(parent);
        for (var attempt = 1; ; attempt++)
        {
            if (attempt > Attempts * 10)
            {
                throw new IOException($"'{name}' keeps changing while it is deleted; giving up");
            }

            var facts = parent.Stat(name);
            if (facts is null)
            {
                return;
            }

            if (!facts.Value.IsDirectory)
            {
                parent.Unlink(name, directory: false);
                return;
            }

            using (var dir = parent.OpenChild(name))
            {
                if (dir is null)
                {
                    continue; // swapped for a link or file since the stat: look again, unlink that
                }

                if (dir.Facts.Device != parent.Facts.Device)
                {
                    throw new IOException($"'{name}' is a mount point; not descending into another file system");
                }

                RemoveChildren(dir);
            }

            try
            {
                parent.Unlink(name, directory: true);
                return;
            }
            catch (IOException) when (attempt < Attempts)
            {
                // Refilled while we emptied it: go round again.
            }
        }
    }

    private static void RemoveChildren(DirectoryHandle dir)
    {
        foreach (var name in dir.Names())
        {
            DeleteEntry(dir, name);
        }
    }

    /// <summary>Apparent size of the regular files in a tree, not following links.</summary>
    public static long TreeSize(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            return 0;
        }

        if (info.Exists)
        {
            return info.Length;
        }

        if (!Directory.Exists(path))
        {
            return 0;
        }

        long total = 0;
        try
        {
            foreach (var entry in new DirectoryInfo(path).EnumerateFileSystemInfos())
            {
                total += entry.LinkTarget is not null ? 0 : TreeSize(entry.FullName);
            }
        }
        catch (UnauthorizedAccessException)
        {
        }
        catch (IOException)
        {
        }

        return total;
    }
}
