namespace Forkd.Core.Store;

/// <summary>
/// Where forkd keeps things: the data dir (snapshots, child registry, locks, caches) and the
/// temp root for work dirs. Resolved once from the environment, then passed around explicitly.
/// </summary>
public sealed record ForkdPaths(string DataDirectory, string TempDirectory)
{
    public const string DataDirVariable = "FORKD_DATA_DIR";

    public const string CacheDirVariable = "FORKD_CACHE_DIR";

    /// <summary><c>FORKD_DATA_DIR</c>, else forkd's rule (<see cref="ResolveDataDirectory"/>); temp from <c>$TMPDIR</c>.</summary>
    public static ForkdPaths FromEnvironment()
    {
        return new ForkdPaths(ResolveDataDirectory(Environment.GetEnvironmentVariable), ResolveTempDirectory());
    }

    /// <summary>
    /// <c>FORKD_DATA_DIR</c> when non-empty (ours), else forkd 0.1.3's <c>data_dir()</c> exactly: a set
    /// <c>XDG_DATA_HOME</c> wins even when empty or relative (<c>$XDG_DATA_HOME/forkd</c>), else a set
    /// <c>HOME</c>, even empty (<c>$HOME/.local/share/forkd</c>), else <c>/tmp/.local/share/forkd</c>.
    /// Unlike forkd the result is made absolute once, against the process's working directory.
    /// </summary>
    public static string ResolveDataDirectory(Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        var explicitDir = env(DataDirVariable);
        if (!string.IsNullOrEmpty(explicitDir))
        {
            return Path.GetFullPath(explicitDir);
        }

        // forkd tests "is it set", not "is it non-empty": "" joins to a relative "forkd".
        if (env("XDG_DATA_HOME") is { } xdg)
        {
            return Path.GetFullPath(Path.Join(xdg, "forkd"));
        }

        var home = env("HOME") ?? "/tmp";
        return Path.GetFullPath(Path.Join(home, ".local", "share", "forkd"));
    }

    /// <summary>The real temp dir: <c>$TMPDIR</c>, else <c>/tmp</c> (forkd's <c>temp_dir()</c>; only its safety checks assumed <c>/tmp</c>).</summary>
    public static string ResolveTempDirectory()
    {
        var tmp = Path.GetFullPath(Path.GetTempPath());
        return Path.TrimEndingDirectorySeparator(tmp);
    }

    public string SnapshotsDirectory => Path.Combine(DataDirectory, "snapshots");

    /// <summary>Extraction area on the data dir's filesystem, so an install is a same-filesystem rename.</summary>
    public string StagingDirectory => Path.Combine(DataDirectory, "staging");

    public string ChildrenDirectory => Path.Combine(DataDirectory, "children");

    public string LocksDirectory => Path.Combine(DataDirectory, "locks");

    /// <summary>
    /// Guest images, root disks, Debian packages and KVM verdicts: <c>FORKD_CACHE_DIR</c>, else <c>&lt;data&gt;/cache</c>.
    /// The one place the cache location is decided; everything that caches asks here.
    /// </summary>
    public string CacheDirectory { get; init; } = ResolveCacheDirectory(DataDirectory, Environment.GetEnvironmentVariable);

    public static string ResolveCacheDirectory(string dataDirectory, Func<string, string?> env)
    {
        ArgumentNullException.ThrowIfNull(env);
        var fromEnv = env(CacheDirVariable);
        return string.IsNullOrEmpty(fromEnv) ? Path.Combine(dataDirectory, "cache") : Path.GetFullPath(fromEnv);
    }

    /// <summary>The directory of one snapshot. The tag is validated first, so the result is always inside the store.</summary>
    public string SnapshotDirectory(string tag) => Path.Combine(SnapshotsDirectory, TagRule.Validate(tag));
}
