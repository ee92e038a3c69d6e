namespace Forkd.Core.Host;

/// <summary>
/// Recursive delete that never follows a symbolic link: a link is removed as a link, so a link
/// planted inside a work dir can never lead the delete outside it.
/// </summary>
public static class SafeDelete
{
    /// <summary>Deletes a file, link or directory tree. Missing paths are fine.</summary>
    public static void Delete(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null)
        {
            info.Delete(); // unlinks the link itself
            return;
        }

        if (Directory.Exists(path))
        {
            DeleteTree(new DirectoryInfo(path));
        }
        else if (info.Exists)
        {
            info.Delete();
        }
    }

    private static void DeleteTree(DirectoryInfo dir)
    {
        foreach (var entry in dir.EnumerateFileSystemInfos())
        {
            if (entry.LinkTarget is not null || entry is FileInfo)
            {
                entry.Delete();
            }
            else if (entry is DirectoryInfo sub)
            {
                DeleteTree(sub);
            }
        }

        dir.Delete(recursive: false);
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
