namespace Forkd.Core.Store;

/// <summary>
/// An exclusive, cross-process lock on one tag (an advisory flock via FileShare.None). Held while a
/// snapshot is written, imported or removed, so two such operations on one tag get a clear
/// "in use" error instead of racing.
/// </summary>
public sealed class TagLock : IDisposable
{
    private readonly FileStream _stream;

    private TagLock(FileStream stream, string tag, bool shared)
    {
        _stream = stream;
        Tag = tag;
        IsShared = shared;
    }

    public string Tag { get; }

    /// <summary>True for a fork's shared hold; installs and removals need the exclusive one.</summary>
    public bool IsShared { get; }

    public static TagLock Acquire(ForkdPaths paths, string tag, string operation) => Acquire(paths, tag, operation, shared: false);

    /// <summary>
    /// A shared hold (flock LOCK_SH): any number of forks of one tag run side by side, while an exclusive
    /// holder (snapshot creation, removal, import) is refused with <c>TagInUse</c>, and the other way round.
    /// </summary>
    public static TagLock AcquireShared(ForkdPaths paths, string tag, string operation) => Acquire(paths, tag, operation, shared: true);

    private static TagLock Acquire(ForkdPaths paths, string tag, string operation, bool shared)
    {
        ArgumentNullException.ThrowIfNull(paths);
        TagRule.Validate(tag);
        Host.PrivateDirectory.Ensure(paths.DataDirectory, allowLink: true);
        Host.PrivateDirectory.Ensure(paths.LocksDirectory);
        var file = Path.Combine(paths.LocksDirectory, tag + ".lock");
        FileStream stream;
        for (var attempt = 0; ; attempt++)
        {
            // Checked before the open too (which would create a dangling link's target); the locks dir is private (0700).
            if (new FileInfo(file).LinkTarget is not null)
            {
                throw UnsafeLockFile(file, tag);
            }

            try
            {
                // .NET on Unix takes flock(LOCK_EX) for FileShare.None and flock(LOCK_SH) for a read-only, shareable open.
                stream = shared
                    ? new FileStream(file, FileMode.OpenOrCreate, FileAccess.Read, FileShare.ReadWrite)
                    : new FileStream(file, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException ex)
            {
                var holder = ReadHolder(file);
                throw new ForkdException("TagInUse", ForkdErrorKind.InUse,
                    $"tag '{tag}' is already in use{(holder is null ? "" : $" by {holder}")}; wait for that operation to finish",
                    tag, ex);
            }

            // The lock is the file at the name, nothing else: a link planted there is refused, and a lock file that a
            // removal unlinked after we opened it (see DeleteWhileHeld) is let go and the name opened again.
            if (Host.NativeFile.IsSameRegularFile(file, stream.SafeFileHandle))
            {
                break;
            }

            stream.Dispose();
            if (new FileInfo(file).LinkTarget is not null || attempt >= 10)
            {
                throw UnsafeLockFile(file, tag);
            }
        }

        // Record who holds it beside the lock (the locked file itself cannot be read by the next caller).
        // Replaced by rename, never written through: a link planted at the name cannot redirect the write.
        Host.SafeFile.WriteAtomicNoFollow(file + ".owner", $"{operation} (pid {Environment.ProcessId}{(shared ? ", shared" : "")})\n");
        return new TagLock(stream, tag, shared);
    }

    private static ForkdException UnsafeLockFile(string file, string tag) =>
        new("LockFileUnsafe", ForkdErrorKind.InvalidData,
            $"{file} is not a plain lock file (a symbolic link or something replaced it); refusing to use it", file)
        { Hint = $"Remove {file} if no Forkd operation on '{tag}' is running." };

    private static string? ReadHolder(string file)
    {
        try
        {
            var line = Host.SafeFile.ReadAllTextNoFollow(file + ".owner", 4096);
            return string.IsNullOrWhiteSpace(line) ? null : line.Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Removes the lock file and its owner note while this exclusive hold keeps them (the tag's snapshot is gone, so
    /// its lock should not linger). A concurrent opener of the old file notices the unlink and opens the name again.
    /// </summary>
    public void DeleteWhileHeld(ForkdPaths paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (IsShared)
        {
            throw new InvalidOperationException("only an exclusive holder may delete the lock file");
        }

        var file = Path.Combine(paths.LocksDirectory, Tag + ".lock");
        File.Delete(file + ".owner");
        File.Delete(file);
    }

    public void Dispose() => _stream.Dispose();
}
