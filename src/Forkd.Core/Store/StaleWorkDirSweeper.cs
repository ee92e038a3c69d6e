using Forkd.Core.Host;

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

    /// <summary>Not removed because it failed a safety rule (another user's, or the only complete copy of a snapshot).</summary>
    Refused,

    /// <summary>Holds the only complete copy of a snapshot whose tag is missing: it will be moved back under its tag.</summary>
    WouldRestore,

    /// <summary>Moved back under <c>snapshots/&lt;tag&gt;</c> (under the tag lock) instead of being deleted.</summary>
    Restored,
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

    /// <summary>Orphaned VMMs (no registry record, forker gone) using this child work dir: removing it stops them first.</summary>
    public IReadOnlyList<int> OrphanProcessIds { get; init; } = [];

    public WorkDirAction Action { get; init; }

    /// <summary>Why it was kept, refused or failed; null when removed.</summary>
    public string? Reason { get; init; }
}

/// <summary>
/// Finds and removes work dirs that crashed runs left behind (forkd's <c>cleanup</c>), without ever
/// removing one a live process still uses or whose creator still runs, one another user owns, the only complete copy of a snapshot,
/// or a name that is not in <see cref="WorkDirectories.Prefixes"/>. Every entry is reached relative to
/// an open handle on its root and deleted with <see cref="SafeDelete.DeleteEntry"/>, so swapping a
/// directory for a symlink mid-sweep cannot redirect it; liveness is compared on canonical paths.
/// </summary>
public sealed partial class StaleWorkDirSweeper
{
    private readonly ForkdPaths _paths;
    private readonly ProcessScanner _scanner;
    private readonly ChildRegistry _registry;

    public StaleWorkDirSweeper(ForkdPaths paths, ProcessScanner? scanner = null, ChildRegistry? registry = null)
    {
        _paths = paths ?? throw new ArgumentNullException(nameof(paths));
        _scanner = scanner ?? new ProcessScanner();
        _registry = registry ?? new ChildRegistry(paths);
    }

    /// <summary>All candidates with their liveness, sorted by path. Nothing is changed.</summary>
    public IReadOnlyList<StaleWorkDir> Find()
    {
        var context = new ScanContext(_scanner.Scan(), OrphansByWorkDir());
        var result = new List<StaleWorkDir>();
        foreach (var root in Enum.GetValues<WorkDirRoot>())
        {
            var rootPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(WorkDirectories.RootPath(_paths, root)));
            if (!Directory.Exists(rootPath))
            {
                continue;
            }

            using var handle = DirectoryHandle.Open(rootPath);
            foreach (var name in handle.Names())
            {
                if (WorkDirectories.Classify(name, root) is { } prefix && Describe(handle, rootPath, name, prefix.Kind, context) is { } entry)
                {
                    result.Add(entry);
                }
            }
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        return result;
    }

    /// <summary>
    /// Removes (or restores) one candidate, re-checking everything first (a run may have started since
    /// <see cref="Find"/>). Orphaned VMMs using it are stopped first. Returns the candidate with its final action.
    /// </summary>
    public StaleWorkDir Remove(StaleWorkDir candidate)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        if (Locate(candidate.Path) is not { } location)
        {
            return candidate with { Action = WorkDirAction.Refused, Reason = "not a forkd work dir directly under the temp or staging dir" };
        }

        var (_, rootPath, name) = location;
        using var handle = DirectoryHandle.Open(rootPath);
        var fresh = Describe(handle, rootPath, name, candidate.Kind, new ScanContext(_scanner.Scan(), OrphansByWorkDir()));
        if (fresh is null)
        {
            return candidate with { Action = WorkDirAction.Removed, Reason = "already gone" };
        }

        if (fresh.OrphanProcessIds.Count > 0)
        {
            StopOrphans(fresh);
            fresh = Describe(handle, rootPath, name, candidate.Kind, new ScanContext(_scanner.Scan(), OrphansByWorkDir()));
            if (fresh is null)
            {
                return candidate with { Action = WorkDirAction.Removed, Reason = null };
            }
        }

        if (fresh.Action is WorkDirAction.KeptLive or WorkDirAction.Refused || fresh.OrphanProcessIds.Count > 0)
        {
            return fresh;
        }

        try
        {
            if (fresh.Action == WorkDirAction.WouldRestore)
            {
                return Restore(handle, name, fresh);
            }

            if (!fresh.IsSymlink)
            {
                // A root-disk build killed mid-chroot can leave /proc, /sys or /dev mounted inside its tree.
                Mounts.DetachAllUnder(Path.Combine(handle.CanonicalPath, name));
            }

            SafeDelete.DeleteEntry(handle, name);
            return fresh with { Action = WorkDirAction.Removed, Reason = null };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return fresh with { Action = WorkDirAction.Failed, Reason = ex.Message };
        }
    }

    private sealed record ScanContext(ProcessHoldings Holdings, IReadOnlyDictionary<string, IReadOnlyList<ForkdChild>> Orphans);

    private StaleWorkDir? Describe(DirectoryHandle root, string rootPath, string name, WorkDirKind kind, ScanContext context)
    {
        var facts = root.Stat(name);
        if (facts is null)
        {
            return null;
        }

        var path = Path.Combine(rootPath, name);
        var canonical = Path.Combine(root.CanonicalPath, name);
        var isLink = facts.Value.IsSymlink;
        // A link is judged by itself, never by what it points at; a directory by its configured and canonical path.
        int[] holders = isLink ? [] : [.. context.Holdings.PidsHolding(path).Union(context.Holdings.PidsHolding(canonical)).Order()];
        int[] orphans = isLink || !context.Orphans.TryGetValue(name, out var found) ? [] : [.. found.Select(o => o.ProcessId)];
        var liveHolders = holders.Except(orphans).ToList();
        var (action, reason) = (WorkDirAction.WouldRemove, (string?)null);
        if (!isLink && facts.Value.OwnerUid != NativeFile.EffectiveUid)
        {
            (action, reason) = (WorkDirAction.Refused, $"owned by uid {facts.Value.OwnerUid}, not by the current user; left alone");
        }
        else if (context.Holdings.UnknownReason is not null)
        {
            (action, reason) = (WorkDirAction.KeptLive, $"process table unreadable ({context.Holdings.UnknownReason}); assuming live");
        }
        else if (liveHolders.Count > 0)
        {
            (action, reason) = (WorkDirAction.KeptLive, "held open by pid " + string.Join(", ", liveHolders));
        }
        else if (!isLink && WorkDirectories.RunningCreator(canonical) is { } creator)
        {
            (action, reason) = (WorkDirAction.KeptLive, $"its creator, pid {creator}, still runs (a fork, build or import may be under way)");
        }
        else if (!isLink && UnverifiableHolder(facts.Value.OwnerUid, context.Holdings) is { } pid)
        {
            (action, reason) = (WorkDirAction.KeptLive, $"cannot inspect pid {pid} of the same owner; assuming live");
        }
        else if (orphans.Length > 0)
        {
            reason = $"used only by orphaned VMM pid {string.Join(", ", orphans)} (no registry record, its forker is gone); stopping it first";
        }
        else if (!isLink && SnapshotVerdict(root, name, kind) is { } verdict)
        {
            (action, reason) = verdict;
        }

        return new StaleWorkDir
        {
            Path = path,
            Kind = kind,
            SizeBytes = isLink ? 0 : SafeDelete.TreeSize(canonical),
            IsLive = action == WorkDirAction.KeptLive,
            IsSymlink = isLink,
            HolderProcessIds = holders,
            OrphanProcessIds = orphans,
            Action = action,
            Reason = reason,
        };
    }

    private Dictionary<string, IReadOnlyList<ForkdChild>> OrphansByWorkDir() =>
        _registry.List().Where(c => c.State == ChildState.Orphaned)
            .GroupBy(c => Path.GetFileName(c.WorkDirectory), StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<ForkdChild>)[.. g], StringComparer.Ordinal);

    private void StopOrphans(StaleWorkDir candidate)
    {
        foreach (var orphan in _registry.List().Where(c => c.State == ChildState.Orphaned && candidate.OrphanProcessIds.Contains(c.ProcessId)))
        {
            if (_registry.IsOurProcess(orphan))
            {
                ProcessControl.KillAndWaitAsync(orphan.ProcessId, TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
            }
        }
    }

    // forkd treated a process whose fds it could not read as not live. We only let that pass for
    // processes of other users: a process of the dir's own owner might hold it.
    private static int? UnverifiableHolder(long owner, ProcessHoldings holdings)
    {
        foreach (var pid in holdings.UnreadablePids)
        {
            if (ProcessControl.Uid(pid) is { } uid && uid == owner)
            {
                return pid;
            }
        }

        return null;
    }

    /// <summary>The root a path sits directly in (configured or canonical form) when its name has that root's prefix; else null.</summary>
    private (WorkDirRoot Root, string RootPath, string Name)? Locate(string path)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        var parent = Path.GetDirectoryName(full);
        var name = Path.GetFileName(full);
        foreach (var root in Enum.GetValues<WorkDirRoot>())
        {
            var forms = WorkDirectories.RootForms(_paths, root);
            if (parent is not null && forms.Contains(parent, StringComparer.Ordinal) && WorkDirectories.Classify(name, root) is not null)
            {
                return (root, forms[0], name);
            }
        }

        return null;
    }
}
