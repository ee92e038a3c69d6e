using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

/// <summary>
/// forkd's <c>--volume HOST:GUEST[:ro]</c> (spec 1.6), with its bugs fixed: the flag is read from the
/// end, so a guest path may contain ':' when the flag is written out (<c>/h.img:/data:x:rw</c>); guest
/// paths must be absolute and free of the ',' and whitespace that would break the kernel's
/// <c>forkd.mounts=</c> list; at most 24 volumes in every code path.
/// </summary>
public static class Volumes
{
    public const int MaxCount = 24;

    public static VolumeSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var first = spec.IndexOf(':', StringComparison.Ordinal);
        if (first <= 0 || first == spec.Length - 1)
        {
            throw Invalid(spec, $"invalid volume spec '{spec}'; expected HOST:GUEST or HOST:GUEST:ro");
        }

        var host = spec[..first];
        var rest = spec[(first + 1)..];
        var readOnly = false;
        var last = rest.LastIndexOf(':');
        if (last >= 0)
        {
            var flag = rest[(last + 1)..];
            if (flag is "ro" or "rw")
            {
                readOnly = flag == "ro";
                rest = rest[..last];
            }
            else if (!flag.Contains('/', StringComparison.Ordinal))
            {
                throw Invalid(spec, $"invalid volume spec '{spec}'; trailing flag must be 'ro' or 'rw', got '{flag}'",
                    "A guest path that contains ':' needs an explicit trailing :ro or :rw.");
            }
        }

        if (rest.Length == 0)
        {
            throw Invalid(spec, $"invalid volume spec '{spec}'; expected HOST:GUEST or HOST:GUEST:ro");
        }

        if (!rest.StartsWith('/') || rest == "/" || rest.Any(c => c == ',' || char.IsWhiteSpace(c)))
        {
            throw Invalid(spec, $"invalid volume spec '{spec}'; the guest path '{rest}' must be absolute, not '/', and contain no ',' or whitespace");
        }

        return new VolumeSpec(host, rest, readOnly);
    }

    private static ForkdException Invalid(string spec, string message, string? hint = null) =>
        new("InvalidVolumeSpec", ForkdErrorKind.InvalidArgument, message, spec) { Hint = hint };

    /// <summary>Checks count and host files; returns the volumes with absolute host paths.</summary>
    public static IReadOnlyList<VolumeSpec> Validate(IReadOnlyList<VolumeSpec> volumes)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        if (volumes.Count > MaxCount)
        {
            throw new ForkdException("TooManyVolumes", ForkdErrorKind.InvalidArgument,
                $"at most {MaxCount} volumes are supported (vdb..vdy); got {volumes.Count}", volumes.Count);
        }

        var result = new List<VolumeSpec>();
        foreach (var v in volumes)
        {
            var host = Path.GetFullPath(v.HostPath);
            if (!File.Exists(host))
            {
                throw new ForkdException("VolumeNotFound", ForkdErrorKind.NotFound, $"volume host file not found: {host}", host)
                {
                    Hint = $"create it with: dd if=/dev/zero of={host} bs=1M count=512 && mkfs.ext4 -F {host}",
                };
            }

            if (result.Any(r => r.GuestPath == v.GuestPath))
            {
                throw new ForkdException("VolumeGuestPathDuplicate", ForkdErrorKind.InvalidArgument,
                    $"two volumes are mounted at {v.GuestPath}", v.GuestPath);
            }

            result.Add(v with { HostPath = host });
        }

        return result;
    }

    /// <summary>Guest block device of the i-th volume: vda is the root disk when there is one (forkd: always vdb..).</summary>
    public static string DeviceName(int index, bool hasRootDisk)
    {
        var slot = index + (hasRootDisk ? 1 : 0);
        if (index < 0 || index >= MaxCount || slot > 25)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"volume index must be 0..{MaxCount - 1}");
        }

        return "vd" + (char)('a' + slot);
    }

    public static string DriveId(int index) => "vol" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The drives for the volumes, in guest order after the root disk.</summary>
    public static IReadOnlyList<DriveSpec> Drives(IReadOnlyList<VolumeSpec> volumes) =>
        [.. volumes.Select((v, i) => new DriveSpec(DriveId(i), v.HostPath, v.ReadOnly))];

    /// <summary>
    /// <c>forkd.mounts=vdb:/a,vdc:/b</c> for the guest init, or "" without volumes. Read-only volumes need no
    /// flag: their device is read-only, and mount falls back to a read-only mount on it.
    /// </summary>
    public static string MountsArgument(IReadOnlyList<VolumeSpec> volumes, bool hasRootDisk)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        return volumes.Count == 0
            ? ""
            : "forkd.mounts=" + string.Join(',', volumes.Select((v, i) => DeviceName(i, hasRootDisk) + ":" + v.GuestPath));
    }

    /// <summary>
    /// forkd let every child mount one read-write volume, corrupting it. Refuse when more than one VM would
    /// write one (children already running count), unless forced; forced, say so.
    /// </summary>
    public static string? CheckSharedWritable(string tag, IReadOnlyList<VolumeSpec> volumes, int newChildren, int runningChildren, bool force)
    {
        ArgumentNullException.ThrowIfNull(volumes);
        var writable = volumes.Where(v => !v.ReadOnly).ToList();
        var writers = newChildren + runningChildren;
        if (writable.Count == 0 || writers <= 1)
        {
            return null;
        }

        var names = string.Join(", ", writable.Select(v => $"{v.HostPath} → {v.GuestPath}"));
        var message = $"snapshot '{tag}' has read-write volume(s) {names}; {writers} children would write the same file system at once, which corrupts it";
        if (!force)
        {
            throw new ForkdException("VolumeSharedWritable", ForkdErrorKind.InUse, message, tag)
            {
                Hint = "Fork one child at a time, make the volume read-only (HOST:GUEST:ro) when the snapshot is taken, or pass -Force to accept the risk.",
            };
        }

        return message + " (forced)";
    }
}
