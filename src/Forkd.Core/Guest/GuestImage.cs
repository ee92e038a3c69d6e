using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core.Guest;

/// <summary>One Debian package inside an image: the exact version and the .deb's SHA-256.</summary>
public sealed record GuestPackage(string Name, string Version, string Sha256);

/// <summary>
/// A built guest image in the cache: an ELF vmlinux plus an initramfs holding the whole root
/// filesystem (it lives in guest RAM, so snapshot children share it copy-on-write).
/// Serialised as <c>image.json</c> in <see cref="Directory"/>.
/// </summary>
public sealed record GuestImage
{
    public const string ManifestFileName = "image.json";
    public const string DefaultAgentPortName = "forkd.agent";

    public required string Recipe { get; init; }

    /// <summary>SHA-256 over the recipe definition, every package's .deb hash and the guest files (hex).</summary>
    public required string ContentHash { get; init; }

    public required string Description { get; init; }

    [JsonIgnore]
    public string Directory { get; init; } = "";

    public required string KernelFileName { get; init; }

    public required string InitramfsFileName { get; init; }

    [JsonIgnore]
    public string KernelPath => Path.Combine(Directory, KernelFileName);

    [JsonIgnore]
    public string InitramfsPath => Path.Combine(Directory, InitramfsFileName);

    /// <summary>Kernel arguments the image needs. The VMM backend adds console, TSC and panic settings.</summary>
    public required string KernelCommandLine { get; init; }

    /// <summary>Name of the virtio-serial port the agent serves (<c>-device virtserialport,name=…</c>).</summary>
    public string AgentPortName { get; init; } = DefaultAgentPortName;

    /// <summary>TCP and vsock port of the agent, when the guest has a network or vsock.</summary>
    public int AgentPort { get; init; } = 8888;

    public required string KernelVersion { get; init; }

    public required string PythonVersion { get; init; }

    public string? NumpyVersion { get; init; }

    public required IReadOnlyList<GuestPackage> Packages { get; init; }

    public required long KernelBytes { get; init; }

    public required long InitramfsBytes { get; init; }

    /// <summary>Default guest RAM for VMs of this image.</summary>
    public int MemoryMiB { get; init; } = 256;

    /// <summary>Python statements to eval once in a parent before it is snapshotted, or null.</summary>
    public string? WarmupCode { get; init; }

    public required DateTimeOffset BuiltAt { get; init; }

    /// <summary>Seconds the build took (0 when it was served from the cache by an older builder).</summary>
    public double BuildSeconds { get; init; }

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public void Save(string directory)
    {
        File.WriteAllText(Path.Combine(directory, ManifestFileName), JsonSerializer.Serialize(this, Options) + "\n");
    }

    /// <summary>Loads <c>image.json</c> from an image directory; null when it is missing or unreadable.</summary>
    public static GuestImage? TryLoad(string directory)
    {
        var file = Path.Combine(directory, ManifestFileName);
        try
        {
            var image = JsonSerializer.Deserialize<GuestImage>(File.ReadAllText(file), Options);
            if (image is null)
            {
                return null;
            }

            image = image with { Directory = directory };
            return File.Exists(image.KernelPath) && File.Exists(image.InitramfsPath) ? image : null;
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException or NotSupportedException)
        {
            return null;
        }
    }
}
