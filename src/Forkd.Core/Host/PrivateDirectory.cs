namespace Forkd.Core.Host;

/// <summary>
/// Directories only the current user may enter (0700): the data dir and everything forkd makes in it,
/// and every work dir. Other local users sharing the machine cannot read sockets, logs or memory images,
/// nor plant files in them.
/// </summary>
public static class PrivateDirectory
{
    public const UnixFileMode Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// Creates <paramref name="path"/> (and missing parents) 0700. An existing directory we own that others may
    /// enter is tightened to 0700; one owned by someone else is refused, and so is a symlink unless
    /// <paramref name="allowLink"/> (the data dir itself is the user's configuration; the dirs inside it are ours).
    /// </summary>
    public static string Ensure(string path, bool allowLink = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(path, Mode);
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null && !allowLink)
        {
            throw new ForkdException("DataDirectoryUnsafe", ForkdErrorKind.PermissionDenied,
                $"{path} is a symbolic link; forkd keeps its files only in real directories", path)
            { Hint = "Replace the link with a directory, or point FORKD_DATA_DIR at the real directory." };
        }

        long owner;
        using (var dir = DirectoryHandle.Open(path))
        {
            owner = dir.Facts.OwnerUid;
        }

        if (owner != NativeFile.EffectiveUid)
        {
            throw new ForkdException("DataDirectoryUnsafe", ForkdErrorKind.PermissionDenied,
                $"{path} belongs to uid {owner}, not to the current user ({NativeFile.EffectiveUid})", path)
            { Hint = "Use a data directory of your own (FORKD_DATA_DIR)." };
        }

        if ((File.GetUnixFileMode(path) & ~Mode) != 0)
        {
            File.SetUnixFileMode(path, Mode);
        }

        return path;
    }
}
