using System.Text.Json.Nodes;
using Forkd.Core.Host;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>One drive as Firecracker sees it: a file name relative to the VM's work dir.</summary>
/// <param name="FileName">Relative path given to Firecracker (and stored in the snapshot).</param>
/// <param name="HostPath">The image the parent was booted from.</param>
/// <param name="SavedCopy">For writable drives: the parent's disk as it was at save time, relative to the snapshot dir.</param>
public sealed record FirecrackerDrive(string Id, string FileName, string HostPath, bool ReadOnly, bool IsRoot, string? SavedCopy = null);

/// <summary>
/// Per-VM disk files. Read-only drives are links to the one shared image. A writable drive is a
/// reflink (copy-on-write clone) per VM, so no two VMs ever write the same file — forkd 0.1.3
/// let every child open the parent's rootfs read-write and corrupt it. Without reflinks a
/// writable drive would mean a full copy per child, so it is refused with a way out instead.
/// </summary>
public static class FirecrackerDrives
{
    public static string FileNameOf(string id) => "disk-" + id + ".img";

    public static IReadOnlyList<FirecrackerDrive> PrepareForBoot(IReadOnlyList<DriveSpec> specs, string workDirectory)
    {
        ArgumentNullException.ThrowIfNull(specs);
        Directory.CreateDirectory(workDirectory);
        var drives = new List<FirecrackerDrive>();
        foreach (var spec in specs)
        {
            ValidateId(spec.Id);
            var drive = new FirecrackerDrive(spec.Id, FileNameOf(spec.Id), Path.GetFullPath(spec.HostPath), spec.ReadOnly, spec.IsRoot);
            if (!File.Exists(drive.HostPath))
            {
                throw new ForkdException("DriveImageNotFound", ForkdErrorKind.NotFound, $"disk image {drive.HostPath} does not exist", drive.HostPath);
            }

            var target = Path.Combine(workDirectory, drive.FileName);
            if (drive.ReadOnly)
            {
                File.CreateSymbolicLink(target, drive.HostPath);
            }
            else
            {
                Reflink(drive.HostPath, target, drive.Id);
            }

            drives.Add(drive);
        }

        return drives;
    }

    /// <summary>After the parent's snapshot: keeps a clone of every writable disk beside the vmstate.</summary>
    public static IReadOnlyList<FirecrackerDrive> SaveWritable(IReadOnlyList<FirecrackerDrive> drives, string workDirectory, string snapshotDirectory)
    {
        ArgumentNullException.ThrowIfNull(drives);
        return drives.Select(d =>
        {
            if (d.ReadOnly)
            {
                return d;
            }

            var saved = FileNameOf(d.Id);
            var target = Path.Combine(snapshotDirectory, saved);
            File.Delete(target);
            Reflink(Path.Combine(workDirectory, d.FileName), target, d.Id);
            return d with { SavedCopy = saved };
        }).ToList();
    }

    /// <summary>Lays out a child's disk files in its work dir under the names recorded in the snapshot.</summary>
    public static void PrepareForChild(IReadOnlyList<FirecrackerDrive> drives, string snapshotDirectory, string workDirectory, IReadOnlyList<DriveSpec> overrides)
    {
        ArgumentNullException.ThrowIfNull(drives);
        ArgumentNullException.ThrowIfNull(overrides);
        Directory.CreateDirectory(workDirectory);
        foreach (var d in drives)
        {
            var target = Path.Combine(workDirectory, d.FileName);
            File.Delete(target);
            var given = overrides.FirstOrDefault(o => o.Id == d.Id);
            if (given is not null)
            {
                // The engine made this child its own (raw) image: use it as it is.
                File.CreateSymbolicLink(target, Path.GetFullPath(given.HostPath));
            }
            else if (d.ReadOnly)
            {
                File.CreateSymbolicLink(target, d.HostPath);
            }
            else
            {
                var saved = d.SavedCopy ?? throw new ForkdException("FirecrackerDiskNotSaved", ForkdErrorKind.InvalidData,
                    $"writable drive '{d.Id}' has no saved copy in the snapshot", d.Id);
                Reflink(Path.Combine(snapshotDirectory, saved), target, d.Id);
            }
        }
    }

    public static JsonArray ToJson(IEnumerable<FirecrackerDrive> drives)
    {
        var array = new JsonArray();
        foreach (var d in drives)
        {
            array.Add(new JsonObject
            {
                ["id"] = d.Id,
                ["file"] = d.FileName,
                ["hostPath"] = d.HostPath,
                ["readOnly"] = d.ReadOnly,
                ["isRoot"] = d.IsRoot,
                ["savedCopy"] = d.SavedCopy,
            });
        }

        return array;
    }

    public static IReadOnlyList<FirecrackerDrive> FromJson(JsonArray? array)
    {
        if (array is null)
        {
            return [];
        }

        return array.Select(n =>
        {
            var o = n as JsonObject ?? throw Bad("a drive entry is not an object");
            var id = (string?)o["id"] ?? throw Bad("a drive has no id");
            ValidateId(id);
            var file = (string?)o["file"] ?? throw Bad($"drive '{id}' has no file");
            if (file != FileNameOf(id))
            {
                throw Bad($"drive '{id}' names file '{file}', expected '{FileNameOf(id)}'");
            }

            var saved = (string?)o["savedCopy"];
            if (saved is not null && saved != FileNameOf(id))
            {
                throw Bad($"drive '{id}' names saved copy '{saved}', expected '{FileNameOf(id)}'");
            }

            return new FirecrackerDrive(id, file, (string?)o["hostPath"] ?? throw Bad($"drive '{id}' has no hostPath"),
                (bool?)o["readOnly"] ?? true, (bool?)o["isRoot"] ?? false, saved);
        }).ToList();
    }

    private static void Reflink(string source, string target, string id)
    {
        if (!FileClone.TryReflink(source, target))
        {
            throw new ForkdException("FirecrackerWritableDiskNeedsReflink", ForkdErrorKind.NotSupported,
                $"drive '{id}' is writable, and {Path.GetDirectoryName(target)} cannot make copy-on-write clones (reflinks) of {source}", id)
            {
                Hint = "Attach the disk read-only (the default; the guest keeps its writes in a tmpfs overlay), or keep the data and temp dirs on btrfs or XFS (reflink=1). See docs/firecracker.md.",
            };
        }
    }

    // Ids end up in file names: letters, digits, '-' and '_' only (no '/', no "..").
    private static void ValidateId(string id)
    {
        if (id.Length is 0 or > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            throw new ForkdException("InvalidDriveId", ForkdErrorKind.InvalidArgument,
                $"drive id '{id}' must be 1–64 letters, digits, '-' or '_'", id);
        }
    }

    private static ForkdException Bad(string what) =>
        new("InvalidBackendConfig", ForkdErrorKind.InvalidData, "snapshot's Firecracker settings are damaged: " + what);
}
