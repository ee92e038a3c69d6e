using Forkd.Core.Host;
using System.Globalization;
using Forkd.Core.Store;

namespace Forkd.Core.Store;

/// <summary>What happened to one candidate work dir.</summary>
public enum WorkDirAction
{
    /// <summary>A process still holds something inside it.</summary>
    KeptLive,

    /// <summary>Dead and deleted.</summary>
    Removed,

    /// <summary>Dead, but the caller declined (e.g. -WhatIf).</summary>
    WouldRemove,

    /// <summary>Dead, but the delete failed; see the reason.</summary>
    Failed,

    /// <summary>Not removed because it failed a safety rule.</summary>
    Refused,
}

/// <summary>One entry under a work-dir root whose name carries one of forkd's prefixes.</summary>
public sealed record StaleWorkDir
{
    public required string Path { get; init; }

    public required WorkDirKind Kind { get; init; }

    public long SizeBytes { get; init; }

    public bool IsLive { get; init; }

    public bool IsSymlink { get; init; }

    public IReadOnlyList<int> HolderProcessIds { get; init; } = [];

    public WorkDirAction Action { get; init; }

    /// <summary>Why it was kept, refused or failed; null when removed.</summary>
    public string? Reason { get; init; }
}

/// <summary>
/// Finds and removes work dirs that crashed runs left behind (forkd's <c>cleanup</c>), without ever
/// removing one a live process still uses, following a link out of its root, or touching a name that
/// is not in <see cref="WorkDirectories.Prefixes"/>.
/// </summary>
public sealed class StaleWorkDirSweeper
{
    private readonly ForkdPaths _paths;
    private readonly ProcessScanner _scanner;

    public StaleWorkDirSweeper(ForkdPaths paths, ProcessScanner? scanner = null)
    {
        _paths = paths ?? throw new ArgumentNullException(nameof(paths));
        _scanner = scanner ?? new ProcessScanner();
    }

    /// <summary>All candidates with their liveness, sorted by path. Nothing is changed.</summary>
    public IReadOnlyList<StaleWorkDir> Find()
    {
        var holdings = _scanner.Scan();
        var result = new List<StaleWorkDir>();
        foreach (var root in Enum.GetValues<WorkDirRoot>())
        {
            var rootPath = WorkDirectories.RootPath(_paths, root);
            if (!Directory.Exists(rootPath))
            {
                continue;
            }

            foreach (var entry in new DirectoryInfo(rootPath).EnumerateFileSystemInfos())
            {
                var prefix = WorkDirectories.Classify(entry.Name, root);
                if (prefix is not null)
                {
                    result.Add(Describe(entry, prefix.Kind, holdings));
                }
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return result;
    }

    /// <summary>
    /// Removes one dead candidate, re-checking its liveness first (a run may have started since
    /// <see cref="Find"/>). Returns the candidate with its final action.
    /// </summary>
    public StaleWorkDir Remove(StaleWorkDir candidate)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        var refusal = SafetyRefusal(candidate.Path);
        if (refusal is not null)
        {
            return candidate with { Action = WorkDirAction.Refused, Reason = refusal };
        }

        var fresh = Describe(new FileInfo(candidate.Path), candidate.Kind, _scanner.Scan());
        if (fresh.IsLive)
        {
            return fresh;
        }

        try
        {
            // A root-disk build killed mid-chroot can leave /proc, /sys or /dev mounted inside its tree.
            Mounts.DetachAllUnder(candidate.Path);
            SafeDelete.Delete(candidate.Path);
            return fresh with { Action = WorkDirAction.Removed, Reason = null };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return fresh with { Action = WorkDirAction.Failed, Reason = ex.Message };
        }
    }

    private static StaleWorkDir Describe(FileSystemInfo entry, WorkDirKind kind, ProcessHoldings holdings)
    {
        var isLink = entry.LinkTarget is not null;
        // A link is judged by itself, never by what it points at.
        var holders = isLink ? [] : holdings.PidsHolding(entry.FullName);
        string? liveReason = null;
        if (holdings.UnknownReason is not null)
        {
            liveReason = $"process table unreadable ({holdings.UnknownReason}); assuming live";
        }
        else if (holders.Count > 0)
        {
            liveReason = "held open by pid " + string.Join(", ", holders);
        }
        else if (!isLink && UnverifiableHolder(entry.FullName, holdings) is { } pid)
        {
            liveReason = $"cannot inspect pid {pid} of the same owner; assuming live";
        }

        return new StaleWorkDir
        {
            Path = entry.FullName,
            Kind = kind,
            SizeBytes = SafeDelete.TreeSize(entry.FullName),
            IsLive = liveReason is not null,
            IsSymlink = isLink,
            HolderProcessIds = holders,
            Action = liveReason is null ? WorkDirAction.WouldRemove : WorkDirAction.KeptLive,
            Reason = liveReason,
        };
    }

    // forkd treated a process whose fds it could not read as not live. We only let that pass for
    // processes of other users: a process of the dir's own owner might hold it.
    private static int? UnverifiableHolder(string path, ProcessHoldings holdings)
    {
        if (holdings.UnreadablePids.Count == 0)
        {
            return null;
        }

        var owner = NativeFile.OwnerUid(path);
        foreach (var pid in holdings.UnreadablePids)
        {
            if (ProcessUid(pid) is { } uid && uid == owner)
            {
                return pid;
            }
        }

        return null;
    }

    private static long? ProcessUid(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return null;
    }

    /// <summary>Null when the path may be removed, else why not: it must sit directly in a known root with a known prefix.</summary>
    private string? SafetyRefusal(string path)
    {
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full);
        var name = Path.GetFileName(full);
        foreach (var root in Enum.GetValues<WorkDirRoot>())
        {
            var rootPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(WorkDirectories.RootPath(_paths, root)));
            if (string.Equals(parent, rootPath, StringComparison.Ordinal) && WorkDirectories.Classify(name, root) is not null)
            {
                return null;
            }
        }

        return "not a forkd work dir directly under the temp or staging dir";
    }
}
