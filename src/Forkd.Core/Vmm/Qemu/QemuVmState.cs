using System.Buffers.Binary;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Qemu;

/// <summary>
/// Builds a child-loadable vmstate from a running child's device state. A child's RAM is private (share=off), so a
/// migration would carry all of it; instead the device state is saved alone (<c>xen-save-devices-state</c>, which
/// skips RAM) and given the stream header of the snapshot the child came from: QEMU's magic, version and
/// configuration section (machine type, the <c>x-ignore-shared</c> capability), which the loading side checks and
/// which are the same for every VM of that machine. RAM then comes from the memory image children map.
/// </summary>
internal static class QemuVmState
{
    /// <summary>backend_config key: length of the header prefix in a vmstate we composed (no RAM section marks its end).</summary>
    public const string HeaderBytesKey = "vmstate_header_bytes";

    private const byte SectionStart = 0x01;
    private const byte VmDescription = 0x06;
    private static ReadOnlySpan<byte> Magic => "QEVM"u8;

    /// <summary>The header prefix of a parent's vmstate: recorded for ours, else everything before its RAM section.</summary>
    public static byte[] Header(string vmStatePath, JsonObject backendConfig)
    {
        ArgumentNullException.ThrowIfNull(backendConfig);
        using var file = new FileStream(vmStatePath, FileMode.Open, FileAccess.Read, FileShare.Read);
        var head = new byte[(int)Math.Min(file.Length, 64 * 1024)];
        file.ReadExactly(head);
        if (!head.AsSpan().StartsWith(Magic))
        {
            throw Unreadable(vmStatePath, "it does not start with QEMU's magic");
        }

        if (backendConfig[HeaderBytesKey]?.GetValue<int>() is int recorded)
        {
            return recorded > 8 && recorded <= head.Length ? head[..recorded] : throw Unreadable(vmStatePath, "its recorded header length is out of range");
        }

        // A migration stream: ... QEMU_VM_SECTION_START, be32 section id, u8 3, "ram", ...
        var ram = head.AsSpan().IndexOf("\u0003ram"u8);
        if (ram < 13 || head[ram - 5] != SectionStart)
        {
            throw Unreadable(vmStatePath, "it has no RAM section after its configuration");
        }

        return head[..(ram - 5)];
    }

    /// <summary>header + the device sections of <paramref name="deviceStatePath"/> (past its own magic and version) + an empty description.</summary>
    public static long Compose(byte[] header, string deviceStatePath, string outputPath)
    {
        var devices = File.ReadAllBytes(deviceStatePath);
        if (devices.Length < 9 || !devices.AsSpan().StartsWith(Magic))
        {
            throw new ForkdException("CheckpointFailed", ForkdErrorKind.Failed, $"QEMU wrote no device state to {deviceStatePath}", deviceStatePath);
        }

        var temp = outputPath + ".partial";
        using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            output.Write(header);
            output.Write(devices.AsSpan(8));
            // The loader reads a description section after EOF (only tools use it); an empty one keeps QEMU quiet.
            Span<byte> description = [VmDescription, 0, 0, 0, 2, (byte)'{', (byte)'}'];
            BinaryPrimitives.WriteUInt32BigEndian(description[1..], 2);
            output.Write(description);
        }

        File.Move(temp, outputPath, overwrite: true);
        return new FileInfo(outputPath).Length;
    }

    private static ForkdException Unreadable(string path, string why) =>
        new("CheckpointFailed", ForkdErrorKind.InvalidData, $"cannot take the stream header from {path}: {why}", path)
        { Hint = "The source child's snapshot was not made by this QEMU; checkpoint a child of a snapshot made here." };
}
