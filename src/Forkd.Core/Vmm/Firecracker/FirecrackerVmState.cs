using System.Buffers.Binary;
using System.Text;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>A block device as a Firecracker vmstate records it: the drive id and the <c>path_on_host</c> it was given.</summary>
/// <param name="ReadOnly">From the device's virtio feature bits (<c>VIRTIO_BLK_F_RO</c>), or null when they could not be read.</param>
public sealed record SavedDrive(string Id, string PathOnHost, bool IsRoot, bool? ReadOnly = null);

/// <summary>A network device as a vmstate records it: the interface id and the host tap it opens on load.</summary>
public sealed record SavedNic(string IfaceId, string TapName);

/// <summary>The host resources a vmstate makes Firecracker reopen on <c>/snapshot/load</c>.</summary>
public sealed record SavedDevices(IReadOnlyList<SavedDrive> Drives, IReadOnlyList<SavedNic> Nics)
{
    public SavedDrive? Root => Drives.FirstOrDefault(d => d.IsRoot) ?? Drives.FirstOrDefault(d => d.Id == "rootfs");
}

/// <summary>
/// Reads, best effort, which files and taps a Firecracker vmstate names. The state file is Firecracker's
/// own serialisation (bincode, fixed-width little-endian integers; strings are a u64 length and UTF-8
/// bytes), and its layout changes between releases, so this does not parse the whole file. It looks
/// for the one shape a block device's state starts with in every release forkd used —
/// <c>id: String, partuuid: Option&lt;String&gt;, cache_type: u32, root_device: bool, disk_path: String</c> —
/// and for a net device's <c>id: String, tap_if_name: String</c> with forkd's interface id <c>eth0</c>.
/// Anything it cannot find is simply not reported; Firecracker itself remains the judge on load.
/// </summary>
public static class FirecrackerVmState
{
    /// <summary>vmstate files are kilobytes; anything far larger is not one.</summary>
    public const long MaxStateBytes = 16 << 20;

    private const int MaxIdBytes = 64;
    private const int MaxPathBytes = 4096;

    public static SavedDevices Read(string vmstatePath)
    {
        var info = new FileInfo(vmstatePath);
        if (!info.Exists || info.Length > MaxStateBytes)
        {
            return new SavedDevices([], []);
        }

        return Parse(File.ReadAllBytes(vmstatePath));
    }

    public static SavedDevices Parse(ReadOnlySpan<byte> state)
    {
        var drives = new List<SavedDrive>();
        var nics = new List<SavedNic>();
        for (var i = 0; i + 8 < state.Length; i++)
        {
            if (!TryString(state, i, MaxIdBytes, IsIdByte, out var id, out var next))
            {
                continue;
            }

            if (TryBlockTail(state, next, out var path, out var isRoot, out var afterPath))
            {
                if (!drives.Any(d => d.Id == id))
                {
                    drives.Add(new SavedDrive(id, path, isRoot, ReadOnlyFeature(state, afterPath)));
                }
            }
            else if (id == "eth0" && TryString(state, next, 15, IsIdByte, out var tap, out _) && !nics.Any(n => n.IfaceId == id))
            {
                nics.Add(new SavedNic(id, tap));
            }
        }

        return new SavedDevices(drives, nics);
    }

    // After the id: partuuid (None = 0, Some = 1 + string), cache_type (u32 0|1), root_device (0|1), disk_path.
    private static bool TryBlockTail(ReadOnlySpan<byte> s, int at, out string path, out bool isRoot, out int next)
    {
        path = "";
        isRoot = false;
        next = at;
        if (at >= s.Length)
        {
            return false;
        }

        var p = at + 1;
        if (s[at] == 1)
        {
            if (!TryString(s, p, MaxIdBytes, IsPrintable, out _, out p))
            {
                return false;
            }
        }
        else if (s[at] != 0)
        {
            return false;
        }

        if (p + 5 > s.Length || BinaryPrimitives.ReadUInt32LittleEndian(s[p..]) > 1 || s[p + 4] > 1)
        {
            return false;
        }

        isRoot = s[p + 4] == 1;
        return TryString(s, p + 5, MaxPathBytes, IsPrintable, out path, out next);
    }

    /// <summary>
    /// The virtio state follows the path: <c>device_type: u32</c> (2 = block; absent in older releases), then
    /// <c>avail_features: u64</c>. Trusted only when <c>VIRTIO_F_VERSION_1</c> (bit 32) is set, as Firecracker always offers it.
    /// </summary>
    private static bool? ReadOnlyFeature(ReadOnlySpan<byte> s, int at)
    {
        const ulong Version1 = 1UL << 32;
        const ulong BlockReadOnly = 1UL << 5;
        foreach (var offset in (ReadOnlySpan<int>)[4, 0])
        {
            if (offset == 4 && (at + 4 > s.Length || BinaryPrimitives.ReadUInt32LittleEndian(s[at..]) != 2))
            {
                continue;
            }

            if (at + offset + 8 <= s.Length && BinaryPrimitives.ReadUInt64LittleEndian(s[(at + offset)..]) is var features && (features & Version1) != 0)
            {
                return (features & BlockReadOnly) != 0;
            }
        }

        return null;
    }

    private static bool TryString(ReadOnlySpan<byte> s, int at, int maxBytes, Func<byte, bool> allowed, out string value, out int next)
    {
        value = "";
        next = at;
        if (at + 8 > s.Length)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt64LittleEndian(s[at..]);
        if (length == 0 || length > (ulong)maxBytes || at + 8 + (long)length > s.Length)
        {
            return false;
        }

        var bytes = s.Slice(at + 8, (int)length);
        foreach (var b in bytes)
        {
            if (!allowed(b))
            {
                return false;
            }
        }

        try
        {
            value = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        next = at + 8 + (int)length;
        return true;
    }

    private static bool IsIdByte(byte b) => b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
        or (byte)'_' or (byte)'-' or (byte)'.';

    // Paths: any UTF-8 without control characters.
    private static bool IsPrintable(byte b) => b >= 0x20 && b != 0x7f;
}
