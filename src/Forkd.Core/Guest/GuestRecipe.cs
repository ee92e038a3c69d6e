using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core.Guest;

/// <summary>
/// A guest image recipe: <c>recipes/&lt;name&gt;/recipe.json</c>. A recipe may name a
/// <see cref="Base"/> recipe; the loaded recipe then holds the union of both (packages,
/// symlinks, prune rules, env), so <see cref="Packages"/> is always the full list.
/// </summary>
public sealed record GuestRecipe
{
    public required string Name { get; init; }

    public string Description { get; init; } = "";

    public string? Base { get; init; }

    /// <summary>The Debian kernel package (a meta package is followed to the versioned one it depends on).</summary>
    public string KernelPackage { get; init; } = "linux-image-cloud-amd64";

    public IReadOnlyList<string> Packages { get; init; } = [];

    /// <summary>Symlinks to create, path inside the image → target (Debian's alternatives, the <c>python3</c> link).</summary>
    public IReadOnlyDictionary<string, string> Symlinks { get; init; } = new Dictionary<string, string>();

    /// <summary>Paths (relative, <c>*</c> wildcards) removed from the image after extraction.</summary>
    public IReadOnlyList<string> Prune { get; init; } = [];

    /// <summary>Written to <c>/etc/forkd-recipe.env</c> (FORKD_WARMUP_CMD, FORKD_AGENT_LANG, …).</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    /// <summary>Python statements the engine sends as the first eval of a parent, before the snapshot.</summary>
    public string? WarmupCode { get; init; }

    public int MemoryMiB { get; init; } = 256;

    /// <summary>The build fails unless the image's agent reports a NumPy version.</summary>
    public bool ExpectNumpy { get; init; }

    /// <summary>The recipe.json bytes (and the base's), hashed into the image's content hash.</summary>
    [JsonIgnore]
    public string DefinitionText { get; init; } = "";

    private static readonly JsonSerializerOptions ReadOptions = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Names of the recipes under <paramref name="recipesDirectory"/>.</summary>
    public static IReadOnlyList<string> ListNames(string recipesDirectory)
    {
        if (!Directory.Exists(recipesDirectory))
        {
            return [];
        }

        return [.. Directory.EnumerateDirectories(recipesDirectory)
            .Where(d => File.Exists(Path.Combine(d, "recipe.json")))
            .Select(Path.GetFileName)
            .OfType<string>()
            .Order(StringComparer.Ordinal)];
    }

    public static GuestRecipe Load(string recipesDirectory, string name) => Load(recipesDirectory, name, 0);

    private static GuestRecipe Load(string recipesDirectory, string name, int depth)
    {
        if (string.IsNullOrWhiteSpace(name) || name.IndexOfAny(['/', '\\']) >= 0 || name.StartsWith('.'))
        {
            throw new ForkdException("InvalidRecipeName", ForkdErrorKind.InvalidArgument, $"'{name}' is not a recipe name", name);
        }

        var file = Path.Combine(recipesDirectory, name, "recipe.json");
        if (!File.Exists(file))
        {
            var known = string.Join(", ", ListNames(recipesDirectory));
            throw new ForkdException("RecipeNotFound", ForkdErrorKind.NotFound, $"no recipe '{name}' in {recipesDirectory}", name)
            {
                Hint = $"Known recipes: {known}",
            };
        }

        var text = File.ReadAllText(file);
        GuestRecipe recipe;
        try
        {
            recipe = JsonSerializer.Deserialize<GuestRecipe>(text, ReadOptions)
                ?? throw new JsonException("empty document");
        }
        catch (JsonException ex)
        {
            throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData, $"{file}: {ex.Message}", name, ex);
        }

        if (!string.Equals(recipe.Name, name, StringComparison.Ordinal))
        {
            throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData,
                $"{file} names itself '{recipe.Name}', expected '{name}'", name);
        }

        recipe = recipe with { DefinitionText = text };
        if (recipe.Base is null)
        {
            return recipe;
        }

        if (depth > 4)
        {
            throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData, $"recipe '{name}': base chain too deep", name);
        }

        var parent = Load(recipesDirectory, recipe.Base, depth + 1);
        return recipe with
        {
            Packages = [.. parent.Packages.Concat(recipe.Packages).Distinct(StringComparer.Ordinal)],
            Symlinks = Merge(parent.Symlinks, recipe.Symlinks),
            Prune = [.. parent.Prune.Concat(recipe.Prune).Distinct(StringComparer.Ordinal)],
            Env = Merge(parent.Env, recipe.Env),
            DefinitionText = parent.DefinitionText + "\n" + text,
        };
    }

    private static Dictionary<string, string> Merge(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b)
    {
        var merged = new Dictionary<string, string>(a, StringComparer.Ordinal);
        foreach (var (k, v) in b)
        {
            merged[k] = v;
        }

        return merged;
    }
}
