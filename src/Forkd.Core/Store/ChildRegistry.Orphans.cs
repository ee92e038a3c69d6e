using System.Globalization;
using Forkd.Core.Host;
using Forkd.Core.Vmm.Firecracker;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.Core.Store;

/// <summary>Proving a pid is a child's VMM, and finding VMMs of ours that no record knows.</summary>
public sealed partial class ChildRegistry
{
    private static readonly char[] TokenSeparators = [',', ' '];

    /// <summary>QEMU system emulators and Firecracker: the only executables forkd launches as VMMs.</summary>
    public static bool IsKnownVmmExecutable(string executable)
    {
        var name = Path.GetFileName(executable);
        return name.StartsWith("qemu-system-", StringComparison.Ordinal) || name == "firecracker";
    }

    /// <summary>
    /// True only when the record's pid is the very process the record was made for: same start time (recorded
    /// at the first save; a record without one proves nothing) and executable, and still its work dir's VMM.
    /// </summary>
    public bool IsOurProcess(ForkdChild child)
    {
        ArgumentNullException.ThrowIfNull(child);
        return child.ProcessStartTicks is { } ticks &&
               IsOurProcess(child.ProcessId, child.WorkDirectory) &&
               ProcessControl.StartTicks(child.ProcessId, ProcRoot) == ticks &&
               (child.Executable is null || ProcessControl.Executable(child.ProcessId, ProcRoot) == child.Executable);
    }

    /// <summary>
    /// True when <paramref name="pid"/> is alive, runs as the current user, executes a VMM binary, and names
    /// <paramref name="workDirectory"/> (a real child or sandbox work-dir name under our temp root) as a whole
    /// component of its command line.
    /// </summary>
    public bool IsOurProcess(int pid, string workDirectory)
    {
        if (pid <= 1 || pid == Environment.ProcessId ||
            !WorkDirectories.IsWorkDirPath(Paths, workDirectory, WorkDirKind.Child, WorkDirKind.Run) ||
            !ProcessControl.IsAlive(pid, ProcRoot) ||
            ProcessControl.Uid(pid, ProcRoot) != NativeFile.EffectiveUid ||
            ProcessControl.Executable(pid, ProcRoot) is not { } exe || !IsVmmExecutable(exe))
        {
            return false;
        }

        var argv = ProcessControl.CommandLine(pid, ProcRoot);
        return argv is not null && argv.Any(a => NamesPath(a, workDirectory));
    }

    /// <summary>
    /// VMMs of this data dir that no record in <paramref name="records"/> knows: a VMM executable of ours whose
    /// command line names a child work dir under our temp root and a file under our data dir (or maps one), and
    /// whose forker is gone. A forker that is still running will record its child itself.
    /// </summary>
    public IReadOnlyList<ForkdChild> Orphans(IReadOnlyCollection<ForkdChild> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var known = records.Select(r => Path.GetFileName(Path.TrimEndingDirectorySeparator(r.WorkDirectory))).ToHashSet(StringComparer.Ordinal);
        var tempRoots = WorkDirectories.RootForms(Paths, WorkDirRoot.Temp);
        var dataRoots = RootFormsOf(Paths.DataDirectory);
        var result = new List<ForkdChild>();
        IEnumerable<string> pidDirs;
        try
        {
            pidDirs = System.IO.Directory.EnumerateDirectories(ProcRoot).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }

        foreach (var dir in pidDirs)
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ||
                ProcessControl.CommandLine(pid, ProcRoot) is not { Count: > 0 } argv ||
                ChildWorkDirIn(argv, tempRoots) is not { } workDir)
            {
                continue;
            }

            var name = Path.GetFileName(workDir);
            if (known.Contains(name) || !IsOurProcess(pid, workDir) || ForkerStillRuns(name, pid) ||
                !UsesDataDirectory(pid, argv, dataRoots))
            {
                continue;
            }

            result.Add(OrphanRecord(pid, workDir, name, argv));
        }

        return [.. result.OrderBy(c => c.ProcessId)];
    }

    /// <summary>
    /// Deletes child work dirs that never got a VMM: their forker died (killed between making the dir and starting
    /// the VMM), no record names them and no VMM uses them, so nothing else ever will. Returns the paths removed.
    /// A dir whose creator still runs (a fork in progress elsewhere) is left alone.
    /// </summary>
    public IReadOnlyList<string> RemoveAbandonedWorkDirectories()
    {
        var root = WorkDirectories.RootPath(Paths, WorkDirRoot.Temp);
        var prefix = WorkDirectories.PrefixOf(WorkDirKind.Child).Prefix;
        var removed = new List<string>();
        List<string> deadCreators;
        try
        {
            // Cheap test first (the name's creator pid): the registry and the process table are read only when a
            // dir's forker is gone, which after a normal stop is never.
            deadCreators = [.. System.IO.Directory.EnumerateDirectories(root, prefix + "*")
                .Where(d => WorkDirectories.CreatorPid(Path.GetFileName(d)) is { } creator && !ProcessControl.IsAlive(creator, ProcRoot))];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return removed;
        }

        if (deadCreators.Count == 0)
        {
            return removed;
        }

        var known = List().Select(r => Path.GetFileName(Path.TrimEndingDirectorySeparator(r.WorkDirectory))).ToHashSet(StringComparer.Ordinal);
        foreach (var dir in deadCreators)
        {
            if (known.Contains(Path.GetFileName(dir)) || VmmsNaming(dir).Count > 0 || new FileInfo(dir).LinkTarget is not null)
            {
                continue;
            }

            SafeDelete.Delete(dir);
            removed.Add(dir);
        }

        return removed;
    }

    /// <summary>Pids of live VMMs of ours whose command line names <paramref name="workDirectory"/> (a work dir still in use).</summary>
    public IReadOnlyList<int> VmmsNaming(string workDirectory)
    {
        var result = new List<int>();
        IEnumerable<string> pidDirs;
        try
        {
            pidDirs = System.IO.Directory.EnumerateDirectories(ProcRoot).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }

        foreach (var dir in pidDirs)
        {
            // Cheap filter first: only a command line that mentions the path at all gets the full proof.
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) &&
                ProcessControl.CommandLine(pid, ProcRoot) is { } argv && argv.Any(a => a.Contains(workDirectory, StringComparison.Ordinal)) &&
                IsOurProcess(pid, workDirectory))
            {
                result.Add(pid);
            }
        }

        return result;
    }

    /// <summary>True when one comma/space-separated token of <paramref name="argument"/> (after a <c>key=</c> or <c>scheme:</c>) is <paramref name="path"/> or below it.</summary>
    internal static bool NamesPath(string argument, string path)
    {
        var dir = Path.TrimEndingDirectorySeparator(path);
        return !string.IsNullOrEmpty(dir) && PathTokens(argument).Any(t => t == dir || t.StartsWith(dir + "/", StringComparison.Ordinal));
    }

    internal static IEnumerable<string> PathTokens(string argument)
    {
        foreach (var token in argument.Split(TokenSeparators, StringSplitOptions.RemoveEmptyEntries))
        {
            var slash = token.IndexOf('/', StringComparison.Ordinal);
            if (slash == 0)
            {
                yield return token;
            }
            else if (slash > 0 && token[slash - 1] is '=' or ':')
            {
                yield return token[slash..]; // path=/x, file:/x, unix:/x
            }
        }
    }

    private static string? ChildWorkDirIn(IReadOnlyList<string> argv, IReadOnlyList<string> tempRoots)
    {
        var prefix = WorkDirectories.PrefixOf(WorkDirKind.Child).Prefix;
        foreach (var token in argv.SelectMany(PathTokens))
        {
            foreach (var root in tempRoots)
            {
                if (token.StartsWith(root + "/" + prefix, StringComparison.Ordinal))
                {
                    var rest = token[(root.Length + 1)..];
                    var end = rest.IndexOf('/', StringComparison.Ordinal);
                    return Path.Combine(root, end < 0 ? rest : rest[..end]);
                }
            }
        }

        return null;
    }

    // The forker's pid is in the work-dir name; it counts as running only if it started before the VMM (pid reuse).
    private bool ForkerStillRuns(string workDirName, int vmmPid)
    {
        if (WorkDirectories.CreatorPid(workDirName) is not { } creator || creator == vmmPid || !ProcessControl.IsAlive(creator, ProcRoot))
        {
            return false;
        }

        var creatorStart = ProcessControl.StartTicks(creator, ProcRoot);
        var vmmStart = ProcessControl.StartTicks(vmmPid, ProcRoot);
        return creatorStart is null || vmmStart is null || creatorStart <= vmmStart;
    }

    private bool UsesDataDirectory(int pid, IReadOnlyList<string> argv, IReadOnlyList<string> dataRoots)
    {
        if (argv.Any(a => dataRoots.Any(root => NamesPath(a, root))))
        {
            return true;
        }

        try
        {
            // Firecracker loads its snapshot over the API: the memory file shows up in its mappings instead.
            return File.ReadLines(Path.Combine(ProcRoot, pid.ToString(CultureInfo.InvariantCulture), "maps"))
                .Select(l => l.IndexOf('/', StringComparison.Ordinal) is var i and >= 0 ? l[i..] : null)
                .Any(p => p is not null && dataRoots.Any(root => p.StartsWith(root + "/", StringComparison.Ordinal)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private ForkdChild OrphanRecord(int pid, string workDir, string name, IReadOnlyList<string> argv)
    {
        var prefix = WorkDirectories.PrefixOf(WorkDirKind.Child);
        var label = WorkDirectories.LabelOf(name, prefix);
        var suffix = name[(name.LastIndexOf('-') + 1)..];
        var id = label is not null && IsValidId($"{label}-{suffix}") ? $"{label}-{suffix}" : $"orphan-{suffix}";
        var exe = ProcessControl.Executable(pid, ProcRoot);
        var firecracker = exe is not null && Path.GetFileName(exe) == "firecracker";
        var memory = argv.SelectMany(PathTokens).FirstOrDefault(t => t.StartsWith(Paths.SnapshotsDirectory + "/", StringComparison.Ordinal));
        DateTimeOffset started;
        try
        {
            started = new DateTimeOffset(System.IO.Directory.GetCreationTimeUtc(workDir), TimeSpan.Zero);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            started = DateTimeOffset.UtcNow;
        }

        return new ForkdChild
        {
            Id = id,
            Tag = label ?? "unknown",
            ProcessId = pid,
            Backend = firecracker ? BackendKind.Firecracker : BackendKind.Qemu,
            Agent = firecracker
                ? new AgentEndpoint(AgentTransport.Vsock, Path.Combine(workDir, FirecrackerBackend.VsockSocketName))
                : new AgentEndpoint(AgentTransport.Unix, Path.Combine(workDir, QemuCommandLine.AgentSocket)),
            WorkDirectory = workDir,
            MemoryFile = memory,
            SnapshotDirectory = memory is null ? null : Path.GetDirectoryName(memory),
            ProcessStartTicks = ProcessControl.StartTicks(pid, ProcRoot),
            Executable = exe,
            StartedAt = started,
            State = ChildState.Orphaned,
        };
    }

    private static IReadOnlyList<string> RootFormsOf(string directory)
    {
        var given = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        var canonical = DirectoryHandle.TryCanonical(given);
        return canonical is null || canonical == given ? [given] : [given, canonical];
    }
}
