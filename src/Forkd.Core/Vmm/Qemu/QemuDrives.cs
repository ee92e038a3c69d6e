using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// Block devices on QEMU's command line and in <c>backend_config</c>. A parent and all of its children
/// open the same image files: read-only ones with QEMU's shared lock, so any number of children may map
/// one root disk; writable ones with the exclusive lock, so a second writer fails to start instead of
/// corrupting the file (unless the user forced shared writing).
/// </summary>
public static class QemuDrives
{
    public static IEnumerable<string> Arguments(IReadOnlyList<DriveSpec> drives)
    {
        ArgumentNullException.ThrowIfNull(drives);
        foreach (var d in drives)
        {
            var drive = $"file={Escape(d.HostPath)},if=none,format=raw,id={d.Id},readonly={(d.ReadOnly ? "on" : "off")}";
            if (d.AllowSharedWrite && !d.ReadOnly)
            {
                drive += ",file.locking=off";
            }

            yield return "-drive";
            yield return drive;
            yield return "-device";
            yield return $"virtio-blk-device,drive={d.Id}";
        }
    }

    /// <summary>Paths inside the snapshot dir are stored relative to it, so a moved snapshot still finds them.</summary>
    public static JsonArray ToJson(IReadOnlyList<DriveSpec> drives)
    {
        ArgumentNullException.ThrowIfNull(drives);
        var array = new JsonArray();
        foreach (var d in drives)
        {
            array.Add(new JsonObject
            {
                ["id"] = d.Id,
                ["path"] = d.HostPath,
                ["read_only"] = d.ReadOnly,
                ["root"] = d.IsRoot,
            });
        }

        return array;
    }

    public static IReadOnlyList<DriveSpec> FromJson(JsonArray? array, string baseDirectory)
    {
        if (array is null)
        {
            return [];
        }

        var drives = new List<DriveSpec>();
        foreach (var node in array)
        {
            if (node is not JsonObject o || o["id"]?.GetValue<string>() is not { } id || o["path"]?.GetValue<string>() is not { } path)
            {
                throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData, "backend_config.drives has an entry without id or path", baseDirectory);
            }

            drives.Add(new DriveSpec(id, Path.IsPathRooted(path) ? path : Path.Combine(baseDirectory, path),
                o["read_only"]?.GetValue<bool>() ?? true, o["root"]?.GetValue<bool>() ?? false));
        }

        return drives;
    }

    /// <summary>Replaces drives by id (per-child settings such as a forced shared write).</summary>
    public static IReadOnlyList<DriveSpec> Override(IReadOnlyList<DriveSpec> drives, IReadOnlyList<DriveSpec> overrides)
    {
        ArgumentNullException.ThrowIfNull(drives);
        ArgumentNullException.ThrowIfNull(overrides);
        return [.. drives.Select(d => overrides.FirstOrDefault(o => o.Id == d.Id) ?? d)];
    }

    // QEMU option values escape a comma by doubling it.
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
