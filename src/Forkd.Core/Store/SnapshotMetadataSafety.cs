using System.Text;
using System.Text.Json.Nodes;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Store;

/// <summary>
/// What a snapshot may point at. Every file a child opens (vmstate, memory image, kernel, initramfs, root
/// disk, any other drive, a saved disk copy) must be a regular file directly in the snapshot directory: a
/// bare name, or an absolute path whose directory is that directory; no <c>..</c>, no symlink leaving it, no
/// device node. Volumes are the one deliberate exception, and only where the local user declared them: a
/// volume drive must name exactly the host path of the volume it belongs to. An imported snapshot keeps
/// only the guest side of its volumes; the host side is bound by the user (<see cref="PrepareImported"/>),
/// and a fork of an unbound one is refused (<see cref="RequireVolumesBound"/>).
/// </summary>
public static unsafe class SnapshotMetadataSafety
{
    /// <summary>ErrorId for a pack whose metadata names something outside its snapshot.</summary>
    public const string UnsafeInPack = "PackUnsafeMetadata";

    /// <summary>ErrorId for a snapshot in the data dir (copied in by hand) whose metadata does.</summary>
    public const string UnsafeInStore = "SnapshotMetadataUnsafe";

    private const uint FileTypeMask = 0xF000; // S_IFMT
    private const uint RegularFile = 0x8000; // S_IFREG
    private const uint SymbolicLink = 0xA000; // S_IFLNK

    /// <summary>
    /// Refuses (<paramref name="errorId"/>, naming the field) any file reference that leaves
    /// <paramref name="snapshotDirectory"/>. <paramref name="root"/> must already obey <see cref="SnapshotMetadataSchema"/>.
    /// </summary>
    public static void CheckPaths(JsonObject root, string snapshotDirectory, string errorId, string source)
    {
        ArgumentNullException.ThrowIfNull(root);
        var dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(snapshotDirectory));
        var check = new Checker(dir, errorId, source);
        check.Canonical(root, "vmstate", SnapshotFiles.VmState);
        check.Canonical(root, "memory", SnapshotFiles.Memory);
        check.File(root, "memory_diff", "memory_diff", optional: true);
        var volumes = root["volumes"] as JsonArray ?? [];
        var hostPaths = new List<string>();
        for (var i = 0; i < volumes.Count; i++)
        {
            var host = (string?)volumes[i]!["host_path"] ?? "";
            if (host.Length > 0 && (!Path.IsPathRooted(host) || Path.GetFullPath(host) != host))
            {
                throw check.Unsafe($"volumes[{i}].host_path", $"'{Printable(host)}' must be an absolute, normalised host path (or empty until bound)");
            }

            hostPaths.Add(host);
        }

        if (root["backend_config"] is not JsonObject config)
        {
            return;
        }

        check.File(config, "kernel", "backend_config.kernel", optional: true);
        check.File(config, "initrd", "backend_config.initrd", optional: true);
        var drives = config["drives"] as JsonArray ?? [];
        for (var i = 0; i < drives.Count; i++)
        {
            var drive = (JsonObject)drives[i]!;
            var volume = VolumeIndex((string?)drive["id"], hostPaths.Count);
            foreach (var key in new[] { "path", "hostPath", "savedCopy" })
            {
                var field = $"backend_config.drives[{i}].{key}";
                if (!drive.ContainsKey(key) || drive[key] is null)
                {
                    continue;
                }

                if (volume is { } v && key != "savedCopy")
                {
                    if ((string?)drive[key] != hostPaths[v])
                    {
                        throw check.Unsafe(field, $"volume drive '{(string?)drive["id"]}' names '{Printable((string?)drive[key] ?? "")}', not the host path of volume {v}");
                    }

                    continue;
                }

                check.File(drive, key, field, optional: false);
            }
        }
    }

    /// <summary>
    /// Turns an imported <c>snapshot.json</c> into one that names nothing of the packing host: forkd's absolute
    /// vmstate/memory paths become the bare names, volume host paths are dropped, or replaced where
    /// <paramref name="bindings"/> (matched by guest path) binds them on this host; volume drives follow.
    /// </summary>
    public static void PrepareImported(JsonObject root, IReadOnlyList<VolumeSpec> bindings, string source)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(bindings);
        var check = new Checker("", UnsafeInPack, source);
        check.Canonical(root, "vmstate", SnapshotFiles.VmState);
        check.Canonical(root, "memory", SnapshotFiles.Memory);
        if (root.ContainsKey("vmstate"))
        {
            root["vmstate"] = SnapshotFiles.VmState;
        }

        if (root.ContainsKey("memory"))
        {
            root["memory"] = SnapshotFiles.Memory;
        }

        var volumes = root["volumes"] as JsonArray ?? [];
        var used = new HashSet<VolumeSpec>();
        var hostPaths = new List<string>();
        foreach (var node in volumes)
        {
            var volume = (JsonObject)node!;
            var guest = (string)volume["guest_path"]!;
            var binding = bindings.FirstOrDefault(b => b.GuestPath == guest);
            var host = binding is null ? "" : Path.GetFullPath(binding.HostPath);
            if (binding is not null)
            {
                used.Add(binding);
                volume["read_only"] = binding.ReadOnly || ((bool?)volume["read_only"] ?? false);
            }

            volume["host_path"] = host;
            hostPaths.Add(host);
        }

        var unknown = bindings.Where(b => !used.Contains(b)).ToList();
        if (unknown.Count > 0)
        {
            throw new ForkdException("VolumeBindingUnknown", ForkdErrorKind.InvalidArgument,
                $"the snapshot has no volume at {string.Join(", ", unknown.Select(b => b.GuestPath))}; its volumes are: " +
                (hostPaths.Count == 0 ? "none" : string.Join(", ", volumes.Select(v => (string?)v!["guest_path"]))), unknown[0].GuestPath);
        }

        foreach (var drive in (root["backend_config"]?["drives"] as JsonArray ?? []).OfType<JsonObject>())
        {
            if (VolumeIndex((string?)drive["id"], hostPaths.Count) is { } v)
            {
                foreach (var key in new[] { "path", "hostPath" })
                {
                    if (drive.ContainsKey(key))
                    {
                        drive[key] = hostPaths[v];
                    }
                }
            }
        }
    }

    /// <summary>
    /// Call before forking: a volume whose host side was dropped at import and never bound would attach
    /// nothing (or the snapshot directory) to the guest.
    /// </summary>
    public static void RequireVolumesBound(SnapshotMetadata metadata, string tag)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var unbound = metadata.Volumes.Where(v => string.IsNullOrEmpty(v.HostPath)).ToList();
        if (unbound.Count > 0)
        {
            throw new ForkdException("VolumeUnbound", ForkdErrorKind.InvalidArgument,
                $"snapshot '{tag}' mounts volume(s) at {string.Join(", ", unbound.Select(v => v.GuestPath))} with no host file bound on this host", tag)
            {
                Hint = $"Volumes are host-specific and not taken from a pack. Import it again with -Force -Volume <host-file>:{unbound[0].GuestPath}[:ro].",
            };
        }
    }

    /// <summary>
    /// The text of a <c>snapshot.json</c>, or null when there is none. It must be a regular file (not a link, FIFO
    /// or device a hand-copied directory could hold) of at most <see cref="SnapshotMetadataSchema.MaxBytes"/>.
    /// </summary>
    public static string? ReadMetadataFile(string file)
    {
        if (!TryLstat(file, out var mode, follow: false))
        {
            return null;
        }

        if ((mode & FileTypeMask) != RegularFile)
        {
            throw new ForkdException(UnsafeInStore, ForkdErrorKind.InvalidData,
                $"{file} is not a regular file (a symbolic link, FIFO or device); refusing to read it", file);
        }

        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        var buffer = new byte[SnapshotMetadataSchema.MaxBytes + 1];
        var total = 0;
        int n;
        while (total < buffer.Length && (n = stream.Read(buffer, total, buffer.Length - total)) > 0)
        {
            total += n;
        }

        if (total > SnapshotMetadataSchema.MaxBytes)
        {
            throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData,
                $"{file} is larger than {SnapshotMetadataSchema.MaxBytes} bytes; it is not a snapshot.json", file);
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(buffer, 0, total);
        }
        catch (DecoderFallbackException ex)
        {
            throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData, $"{file} is not UTF-8 text", file, ex);
        }
    }

    /// <summary>The volume a drive belongs to: id <c>vol&lt;i&gt;</c> for a declared volume i, else null.</summary>
    private static int? VolumeIndex(string? id, int volumeCount) =>
        id is not null && id.StartsWith("vol", StringComparison.Ordinal) &&
        int.TryParse(id.AsSpan(3), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var i) &&
        i < volumeCount && id == VolumeDriveId(i)
            ? i
            : null;

    /// <summary>The drive id the engine gives volume <paramref name="index"/> (<c>vol0</c>, <c>vol1</c>, …).</summary>
    public static string VolumeDriveId(int index) => "vol" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Printable(string s) => new(s.Take(200).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private sealed class Checker(string dir, string errorId, string source)
    {
        /// <summary>forkd's vmstate/memory: the canonical bare name, or any absolute path ending in it (rebased by name).</summary>
        public void Canonical(JsonObject root, string key, string name)
        {
            if (root[key] is not { } node)
            {
                return;
            }

            var value = (string)node!;
            if (value != name && !(Path.IsPathRooted(value) && Path.GetFileName(value) == name && !value.EndsWith('/')))
            {
                throw Unsafe(key, $"'{Printable(value)}' is not the snapshot's own {name}");
            }

            if (dir.Length > 0)
            {
                CheckOnDisk(Path.Combine(dir, name), key);
            }
        }

        public void File(JsonObject parent, string key, string field, bool optional)
        {
            if (parent[key] is not { } node)
            {
                return;
            }

            var value = (string)node!;
            if (value.Length == 0)
            {
                if (optional)
                {
                    return;
                }

                throw Unsafe(field, "is empty; it would name the snapshot directory itself");
            }

            string full;
            if (Path.IsPathRooted(value))
            {
                full = Path.GetFullPath(value);
                if (Path.GetDirectoryName(full) != dir)
                {
                    throw Unsafe(field, $"'{Printable(value)}' is outside the snapshot directory");
                }
            }
            else
            {
                if (value.Contains('/', StringComparison.Ordinal) || value is "." or "..")
                {
                    throw Unsafe(field, $"'{Printable(value)}' must be a file name in the snapshot directory (no '/' or '..')");
                }

                full = Path.Combine(dir, value);
            }

            CheckOnDisk(full, field);
        }

        /// <summary>A missing file is the store's "incomplete" case; what is there must be a regular file that stays inside.</summary>
        private void CheckOnDisk(string full, string field)
        {
            if (!TryLstat(full, out var mode, follow: false))
            {
                return;
            }

            if ((mode & FileTypeMask) == SymbolicLink)
            {
                // Inside means: the file the link ends at is itself an entry of the snapshot directory.
                if (!TryStatId(full, out var target, out mode) || !EntriesOf(dir).Contains(target))
                {
                    throw Unsafe(field, $"{Path.GetFileName(full)} is a symbolic link that leaves the snapshot directory");
                }
            }

            if ((mode & FileTypeMask) != RegularFile)
            {
                throw Unsafe(field, $"{Path.GetFileName(full)} is not a regular file (a device, FIFO, socket or directory)");
            }
        }

        public ForkdException Unsafe(string field, string why) =>
            new(errorId, ForkdErrorKind.InvalidData, $"{source}: '{field}' {why}; a snapshot may only use files inside its own directory", field)
            {
                Hint = errorId == UnsafeInPack
                    ? "The pack tries to reach files on this host. Do not import it; ask the publisher for an honest export."
                    : "snapshot.json was edited or copied in from elsewhere; restore the original or remove the snapshot.",
            };
    }

    private static bool TryLstat(string path, out uint mode, bool follow)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat buf;
        fixed (byte* p = bytes)
        {
            var rc = follow ? stat(p, &buf) : lstat(p, &buf);
            mode = rc == 0 ? (uint)buf.st_mode : 0;
            return rc == 0;
        }
    }

    private static bool TryStatId(string path, out (ulong Device, ulong Inode) id, out uint mode)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        stat buf;
        fixed (byte* p = bytes)
        {
            var ok = stat(p, &buf) == 0;
            id = ok ? ((ulong)buf.st_dev, (ulong)buf.st_ino) : default;
            mode = ok ? (uint)buf.st_mode : 0;
            return ok;
        }
    }

    /// <summary>(device, inode) of every entry of <paramref name="dir"/> that is not itself a link.</summary>
    private static HashSet<(ulong, ulong)> EntriesOf(string dir)
    {
        var result = new HashSet<(ulong, ulong)>();
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            if (TryLstat(entry, out var mode, follow: false) && (mode & FileTypeMask) != SymbolicLink && TryStatId(entry, out var id, out _))
            {
                result.Add(id);
            }
        }

        return result;
    }
}
