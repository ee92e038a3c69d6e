using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core.Guest;

/// <summary>File system of a root disk image.</summary>
public enum RootDiskFormat
{
    /// <summary><c>mkfs.ext4 -d</c>: no decompression in the guest, fastest under TCG.</summary>
    Ext4,

    /// <summary><c>mksquashfs</c> (zstd): smaller on disk, costs guest CPU to read.</summary>
    Squashfs,
}

/// <summary>The <c>rootDisk</c> section of a recipe: a root file system built from Debian packages into a disk image.</summary>
public sealed record RootDiskSpec
{
    public string Suite { get; init; } = "bookworm";

    public RootDiskFormat Format { get; init; } = RootDiskFormat.Ext4;

    /// <summary>Debian packages installed with their dependencies (mmdebstrap, variant essential).</summary>
    public IReadOnlyList<string> Packages { get; init; } = [];

    /// <summary>npm packages (<c>name@exact-version</c>) installed into /opt/forkd/node_modules at build time.</summary>
    public IReadOnlyList<string> Npm { get; init; } = [];

    /// <summary>Files copied in: path inside the image → path relative to the guest/ folder.</summary>
    public IReadOnlyDictionary<string, string> Files { get; init; } = new Dictionary<string, string>();

    /// <summary>apt source lines; empty = deb.debian.org's suite, -updates and -security.</summary>
    public IReadOnlyList<string> Sources { get; init; } = [];

    /// <summary>Extra kernel arguments (KEY=VALUE ones reach init, and so the agent, as environment).</summary>
    public string KernelArguments { get; init; } = "";
}

/// <summary>A recipe with a root disk: the usual recipe fields the root disk build needs, plus <see cref="RootDisk"/>.</summary>
public sealed record RootDiskRecipe
{
    public required string Name { get; init; }

    public string Description { get; init; } = "";

    public string KernelPackage { get; init; } = "linux-image-cloud-amd64";

    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    public int MemoryMiB { get; init; } = 512;

    public RootDiskSpec? RootDisk { get; init; }

    [JsonIgnore]
    public string DefinitionText { get; init; } = "";

    private static readonly JsonSerializerOptions ReadOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>True when the recipe builds a root disk (and so is not an initramfs-only image).</summary>
    public static bool HasRootDisk(string recipesDirectory, string name) => TryLoad(recipesDirectory, name)?.RootDisk is not null;

    public static RootDiskRecipe? TryLoad(string recipesDirectory, string name)
    {
        var file = Path.Combine(recipesDirectory, name, "recipe.json");
        if (name.IndexOfAny(['/', '\\']) >= 0 || name.StartsWith('.') || !File.Exists(file))
        {
            return null;
        }

        return Load(recipesDirectory, name);
    }

    public static RootDiskRecipe Load(string recipesDirectory, string name)
    {
        // The shared rules (name, existence, self-name) come from the image recipe loader.
        var common = GuestRecipe.Load(recipesDirectory, name);
        var file = Path.Combine(recipesDirectory, name, "recipe.json");
        var text = File.ReadAllText(file);
        try
        {
            var recipe = JsonSerializer.Deserialize<RootDiskRecipe>(text, ReadOptions) ?? throw new JsonException("empty document");
            if (recipe.RootDisk is { } disk && disk.Packages.Count == 0)
            {
                throw new JsonException("rootDisk.packages is empty");
            }

            return recipe with { Name = common.Name, DefinitionText = text };
        }
        catch (JsonException ex)
        {
            throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData, $"{file}: {ex.Message}", name, ex);
        }
    }
}
