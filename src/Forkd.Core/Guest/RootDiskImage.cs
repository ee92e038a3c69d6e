using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core.Guest;

/// <summary>
/// A built root-disk image in the cache: the kernel, a small boot initramfs (busybox, modules, init and
/// the root-disk stage) and the root disk itself, which every VM of the recipe attaches read-only.
/// </summary>
public sealed record RootDiskImage
{
    public const string ManifestFileName = "rootdisk.json";

    public required string Recipe { get; init; }

    public required string ContentHash { get; init; }

    public string Description { get; init; } = "";

    [JsonIgnore]
    public string Directory { get; init; } = "";

    public required string KernelFileName { get; init; }

    public required string InitramfsFileName { get; init; }

    public required string RootDiskFileName { get; init; }

    public required RootDiskFormat Format { get; init; }

    public string KernelPath => Path.Combine(Directory, KernelFileName);

    public string InitramfsPath => Path.Combine(Directory, InitramfsFileName);

    public string RootDiskPath => Path.Combine(Directory, RootDiskFileName);

    public required string KernelCommandLine { get; init; }

    public required string KernelVersion { get; init; }

    /// <summary>What dpkg installed into the root disk, <c>name version</c>, sorted.</summary>
    public IReadOnlyList<string> Packages { get; init; } = [];

    public IReadOnlyList<string> NpmPackages { get; init; } = [];

    public long RootDiskBytes { get; init; }

    public int MemoryMiB { get; init; } = 512;

    /// <summary>The recipe's FORKD_WARMUP_CMD, when it has one: a snapshot waits until that process reports ready.</summary>
    public string? WarmupCommand { get; init; }

    public required DateTimeOffset BuiltAt { get; init; }

    public double BuildSeconds { get; init; }

    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public void Save(string directory) =>
        File.WriteAllText(Path.Combine(directory, ManifestFileName), JsonSerializer.Serialize(this, Options));

    /// <summary>The image in <paramref name="directory"/> when its manifest and all three files are there, else null.</summary>
    public static RootDiskImage? TryLoad(string directory)
    {
        var manifest = Path.Combine(directory, ManifestFileName);
        if (!File.Exists(manifest))
        {
            return null;
        }

        try
        {
            var image = JsonSerializer.Deserialize<RootDiskImage>(File.ReadAllText(manifest), Options);
            if (image is null)
            {
                return null;
            }

            image = image with { Directory = directory };
            return File.Exists(image.KernelPath) && File.Exists(image.InitramfsPath) && File.Exists(image.RootDiskPath) ? image : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
