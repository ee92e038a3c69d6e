using System.Security.Cryptography;
using System.Text.Json;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Store;

/// <summary>
/// Children outlive the cmdlet that forked them: each is recorded as <c>&lt;data&gt;/children/&lt;id&gt;.json</c>
/// (written atomically), so any later session can list and stop them. A record's child counts as
/// running only while its pid is alive AND that process's command line still names the child's work
/// dir — a recycled pid belonging to something else reads as exited, and is never signalled.
/// </summary>
public sealed class ChildRegistry
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public ChildRegistry(ForkdPaths paths, string procRoot = "/proc")
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
        ProcRoot = procRoot;
    }

    public ForkdPaths Paths { get; }

    public string ProcRoot { get; }

    public string Directory => Paths.ChildrenDirectory;

    /// <summary>A fresh id <c>&lt;tag&gt;-&lt;8 hex&gt;</c>.</summary>
    public static string NewId(string tag) => $"{TagRule.Validate(tag)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";

    public void Save(ForkdChild child)
    {
        ArgumentNullException.ThrowIfNull(child);
        System.IO.Directory.CreateDirectory(Directory);
        var file = FileOf(child.Id);
        var temp = file + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(child, Options));
        File.Move(temp, file, overwrite: true);
    }

    public void Delete(string id) => File.Delete(FileOf(id));

    /// <summary>All recorded children, oldest first, each with its current <see cref="ForkdChild.State"/>.</summary>
    public IReadOnlyList<ForkdChild> List()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            return [];
        }

        var result = new List<ForkdChild>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json"))
        {
            var child = Read(file);
            if (child is not null)
            {
                result.Add(child);
            }
        }

        result.Sort((a, b) => a.StartedAt != b.StartedAt ? a.StartedAt.CompareTo(b.StartedAt) : a.Index.CompareTo(b.Index));
        return result;
    }

    public ForkdChild? Get(string id)
    {
        if (!IsValidId(id))
        {
            return null;
        }

        var file = FileOf(id);
        return File.Exists(file) ? Read(file) : null;
    }

    /// <summary>Ids of running children of <paramref name="tag"/> (their VMMs map the snapshot's memory file).</summary>
    public IReadOnlyList<string> RunningChildrenOf(string tag) =>
        [.. List().Where(c => c.IsAlive && string.Equals(c.Tag, tag, StringComparison.Ordinal)).Select(c => c.Id)];

    /// <summary>True when <paramref name="pid"/> is alive and is still the VMM of <paramref name="workDirectory"/>.</summary>
    public bool IsOurProcess(int pid, string workDirectory)
    {
        if (!ProcessControl.IsAlive(pid, ProcRoot))
        {
            return false;
        }

        var argv = ProcessControl.CommandLine(pid, ProcRoot);
        return argv is not null && argv.Any(a => a.Contains(workDirectory, StringComparison.Ordinal));
    }

    private ForkdChild? Read(string file)
    {
        try
        {
            var child = JsonSerializer.Deserialize<ForkdChild>(File.ReadAllText(file), Options);
            if (child is null)
            {
                return null;
            }

            var alive = IsOurProcess(child.ProcessId, child.WorkDirectory);
            return child with { State = !alive ? ChildState.Exited : child.Paused ? ChildState.Paused : ChildState.Running };
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null; // being replaced right now, or not one of ours
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
