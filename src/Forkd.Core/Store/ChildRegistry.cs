using System.Security.Cryptography;
using System.Text.Json;
using Forkd.Core.Host;

namespace Forkd.Core.Store;

/// <summary>
/// Children outlive the cmdlet that forked them: each is recorded as <c>&lt;data&gt;/children/&lt;id&gt;.json</c>
/// (written atomically, never through a link), so any later session can list and stop them. A record is
/// data, not proof: its child counts as running only while a process with the recorded pid AND start
/// time runs a VMM executable, as the current user, with the child's work dir (a real work-dir name under
/// our temp root) as a whole component of its command line. A VMM that names one of our work dirs but no
/// record is listed as <see cref="ChildState.Orphaned"/> (see ChildRegistry.Orphans.cs).
/// </summary>
public sealed partial class ChildRegistry
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    // A temp file whose name carries no writer pid (older releases) is abandoned after this long.
    private static readonly TimeSpan UnnamedTempAge = TimeSpan.FromMinutes(1);

    public ChildRegistry(ForkdPaths paths, string procRoot = "/proc", Func<string, bool>? isVmmExecutable = null)
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
        ProcRoot = procRoot;
        IsVmmExecutable = isVmmExecutable ?? IsKnownVmmExecutable;
    }

    public ForkdPaths Paths { get; }

    public string ProcRoot { get; }

    /// <summary>Which executables (<c>/proc/&lt;pid&gt;/exe</c>) may be signalled as a child's VMM: QEMU and Firecracker unless told otherwise.</summary>
    public Func<string, bool> IsVmmExecutable { get; }

    public string Directory => Paths.ChildrenDirectory;

    /// <summary>A fresh id <c>&lt;tag&gt;-&lt;8 hex&gt;</c>.</summary>
    public static string NewId(string tag) => $"{TagRule.Validate(tag)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";

    /// <summary>
    /// Writes the record. The first save of a child with a live pid also records that process's start time and
    /// executable, but only once the process is proved to be the child's VMM (so a later pid reuse cannot pass).
    /// </summary>
    public void Save(ForkdChild child)
    {
        ArgumentNullException.ThrowIfNull(child);
        PrivateDirectory.Ensure(Paths.DataDirectory, allowLink: true);
        PrivateDirectory.Ensure(Directory);
        if (child.ProcessStartTicks is null && child.ProcessId > 0 && IsOurProcess(child.ProcessId, child.WorkDirectory))
        {
            child = child with
            {
                ProcessStartTicks = ProcessControl.StartTicks(child.ProcessId, ProcRoot),
                Executable = ProcessControl.Executable(child.ProcessId, ProcRoot),
            };
        }

        SafeFile.WriteAtomicNoFollow(FileOf(child.Id), JsonSerializer.Serialize(child with { State = ChildState.Running }, Options));
    }

    /// <summary>Removes a record; a missing one (an orphan never had one) is fine.</summary>
    public void Delete(string id)
    {
        var file = FileOf(id);
        if (System.IO.Directory.Exists(Directory))
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// All recorded children, oldest first, each with its current <see cref="ForkdChild.State"/>, then every orphaned
    /// VMM of this data dir. Temp files of writers that died are removed on the way.
    /// </summary>
    public IReadOnlyList<ForkdChild> List()
    {
        var result = ReadRecords();
        result.Sort((a, b) => a.StartedAt != b.StartedAt ? a.StartedAt.CompareTo(b.StartedAt) : a.Index.CompareTo(b.Index));
        result.AddRange(Orphans(result));
        return result;
    }

    /// <summary>One child by id: its record, else an orphaned VMM with that id; null when neither exists.</summary>
    public ForkdChild? Get(string id)
    {
        if (!IsValidId(id))
        {
            return null;
        }

        var file = FileOf(id);
        if (File.Exists(file) || new FileInfo(file).LinkTarget is not null)
        {
            return Read(file);
        }

        return Orphans(ReadRecords()).FirstOrDefault(o => o.Id == id);
    }

    /// <summary>Ids of running (or orphaned) children of <paramref name="tag"/>: their VMMs map the snapshot's memory file.</summary>
    public IReadOnlyList<string> RunningChildrenOf(string tag) =>
        [.. List().Where(c => c.IsAlive && string.Equals(c.Tag, tag, StringComparison.Ordinal)).Select(c => c.Id)];

    private List<ForkdChild> ReadRecords()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        SafeFile.RemoveAbandonedTemps(Directory, UnnamedTempAge, ProcRoot);
        var result = new List<ForkdChild>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json"))
        {
            if (Read(file) is { } child)
            {
                result.Add(child);
            }
        }

        return result;
    }

    private ForkdChild? Read(string file)
    {
        try
        {
            var child = JsonSerializer.Deserialize<ForkdChild>(SafeFile.ReadAllTextNoFollow(file), Options);
            if (child is null || !IsValidId(child.Id) || Path.GetFileName(file) != child.Id + ".json")
            {
                return null; // a record must name itself: a copied or planted file cannot stand in for another child
            }

            return child with { State = !IsOurProcess(child) ? ChildState.Exited : child.Paused ? ChildState.Paused : ChildState.Running };
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null; // being replaced right now, a link, or not one of ours
        }
    }

    // Ids come from users (-Id): they must stay one file name inside the registry.
    public static bool IsValidId(string? id) => TagRule.IsValid(id);

    private string FileOf(string id)
    {
        if (!IsValidId(id))
        {
            throw new ForkdException("InvalidChildId", ForkdErrorKind.InvalidArgument, $"invalid child id '{id}'", id);
        }

        return Path.Combine(Directory, id + ".json");
    }
}
