namespace Forkd.Core.Host;

/// <summary>Finds a program on <c>PATH</c> the way a shell would, without starting it.</summary>
public static class ExecutableSearch
{
    public static string? Find(string name, string? path = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(name) ? Path.GetFullPath(name) : null;
        }

        foreach (var dir in (path ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (IsExecutable(candidate))
            {
                return Path.GetFullPath(candidate);
            }
        }

        return null;
    }

    /// <summary>A file that exists and has an execute bit.</summary>
    public static bool IsExecutable(string path)
    {
        try
        {
            var info = new FileInfo(path);
            return info.Exists && (info.UnixFileMode & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
