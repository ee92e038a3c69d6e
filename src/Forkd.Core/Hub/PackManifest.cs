using System.Globalization;
using System.Text;
using Tomlyn;
using Tomlyn.Model;

namespace Forkd.Core.Hub;

/// <summary>
/// <c>manifest.toml</c>, the first entry of every pack (spec 1.12.1; v2's <c>chain[]</c> in PackManifest.Chain.cs).
/// Parsing is strict about the keys forkd defines (type and shape) and ignores keys it does not know, as forkd's serde does.
/// </summary>
public sealed partial record PackManifest
{
    public long FormatVersion { get; init; } = PackFormat.Version;

    public required string Tag { get; init; }

    public string? Description { get; init; }

    public string? BaseImage { get; init; }

    /// <summary>UTC, <c>YYYY-MM-DDTHH:MM:SSZ</c>.</summary>
    public required string CreatedAt { get; init; }

    public required string ForkdVersion { get; init; }

    /// <summary>The head's parent in a v2 pack (forkd reserved it for chains); never set in v1.</summary>
    public string? ParentTag { get; init; }

    /// <summary>v2: the links, root first, head (<see cref="Tag"/>) last; empty in v1.</summary>
    public IReadOnlyList<PackChainLink> Chain { get; init; } = [];

    public IReadOnlyList<PackFileEntry> Files { get; init; } = [];

    public bool IsChain => FormatVersion == PackFormat.ChainVersion;

    public static string FormatTimestamp(DateTimeOffset time) =>
        time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>The TOML text, in the key order and shape of forkd's <c>toml::to_string_pretty</c>.</summary>
    public string ToToml()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"forkd_pack_version = {FormatVersion}\n");
        sb.Append("tag = ").Append(Quote(Tag)).Append('\n');
        if (Description is not null)
        {
            sb.Append("description = ").Append(Quote(Description)).Append('\n');
        }

        if (BaseImage is not null)
        {
            sb.Append("base_image = ").Append(Quote(BaseImage)).Append('\n');
        }

        sb.Append("created_at = ").Append(Quote(CreatedAt)).Append('\n');
        sb.Append("forkd_version = ").Append(Quote(ForkdVersion)).Append('\n');
        if (ParentTag is not null)
        {
            sb.Append("parent_tag = ").Append(Quote(ParentTag)).Append('\n');
        }

        AppendChain(sb);
        foreach (var file in Files)
        {
            sb.Append("\n[[files]]\n");
            sb.Append("path = ").Append(Quote(file.Path)).Append('\n');
            sb.Append(CultureInfo.InvariantCulture, $"size = {file.Size}\n");
            sb.Append("sha256 = ").Append(Quote(file.Sha256)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>A TOML basic string: quotes, backslashes and control characters escaped.</summary>
    internal static string Quote(string value)
    {
        var sb = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (char.IsControl(c))
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
                    }
                    else
                    {
                        sb.Append(c);
                    }

                    break;
            }
        }

        return sb.Append('"').ToString();
    }

    /// <summary>Parses and checks a manifest. Throws <c>PackManifestInvalid</c> or <c>PackVersionUnsupported</c>.</summary>
    public static PackManifest Parse(string text, string source)
    {
        TomlTable table;
        try
        {
            table = TomlSerializer.Deserialize<TomlTable>(text)
                    ?? throw new TomlException("empty document");
        }
        catch (Exception ex) when (ex is TomlException or InvalidOperationException or FormatException or ArgumentException)
        {
            var start = text.Length > 40 ? text[..40] : text;
            throw Invalid(source, $"not valid TOML ({FirstLine(ex.Message)}); it is {text.Length} characters and starts with \"{Printable(start)}\"", ex);
        }

        if (!table.TryGetValue("forkd_pack_version", out var versionValue) || versionValue is not long version)
        {
            throw Invalid(source, "key 'forkd_pack_version' is missing or not an integer");
        }

        if (version is < PackFormat.Version or > PackFormat.MaxSupportedVersion)
        {
            var newer = version > PackFormat.MaxSupportedVersion;
            throw new ForkdException("PackVersionUnsupported", ForkdErrorKind.NotSupported,
                newer
                    ? $"pack format version {version} is newer than this module supports ({PackFormat.MaxSupportedVersion})"
                    : $"pack format version {version} is not a valid forkd pack version (this module reads versions {PackFormat.Version} and {PackFormat.MaxSupportedVersion})",
                source)
            {
                Hint = newer ? "Update the Forkd module, or ask the publisher for a version 1 pack (a merged, standalone snapshot)." : "The pack was not written by forkd.",
            };
        }

        var files = new List<PackFileEntry>();
        if (table.TryGetValue("files", out var filesValue))
        {
            if (filesValue is not TomlTableArray array)
            {
                throw Invalid(source, "key 'files' must be an array of tables ([[files]])");
            }

            foreach (var item in array)
            {
                files.Add(ParseFile(item, source, files.Count));
            }
        }

        var manifest = new PackManifest
        {
            FormatVersion = version,
            Tag = RequiredString(table, "tag", source),
            Description = OptionalString(table, "description", source),
            BaseImage = OptionalString(table, "base_image", source),
            CreatedAt = RequiredString(table, "created_at", source),
            ForkdVersion = RequiredString(table, "forkd_version", source),
            ParentTag = OptionalString(table, "parent_tag", source),
            Files = files,
        };
        // v1 has no chain: a 'chain' key there is ignored, as forkd 0.1.3's serde ignores it.
        return version == PackFormat.ChainVersion ? manifest with { Chain = ParseChain(table, manifest, source) } : manifest;
    }

    private static PackFileEntry ParseFile(TomlTable item, string source, int index)
    {
        var where = $"files[{index}]";
        if (!item.TryGetValue("path", out var p) || p is not string path || path.Length == 0)
        {
            throw Invalid(source, $"{where}: 'path' is missing or not a string");
        }

        if (!item.TryGetValue("size", out var s) || s is not long size || size < 0)
        {
            throw Invalid(source, $"{where} ({path}): 'size' is missing or not a non-negative integer");
        }

        if (!item.TryGetValue("sha256", out var h) || h is not string sha || !IsSha256Hex(sha))
        {
            throw Invalid(source, $"{where} ({path}): 'sha256' is missing or not 64 hex digits");
        }

        return new PackFileEntry(path, size, sha.ToLowerInvariant());
    }

    internal static bool IsSha256Hex(string s) => s.Length == 64 && s.All(char.IsAsciiHexDigit);

    private static string RequiredString(TomlTable table, string key, string source) =>
        OptionalString(table, key, source) ?? throw Invalid(source, $"key '{key}' is missing");

    private static string? OptionalString(TomlTable table, string key, string source)
    {
        if (!table.TryGetValue(key, out var value))
        {
            return null;
        }

        return value as string ?? throw Invalid(source, $"key '{key}' must be a string");
    }

    internal static ForkdException Invalid(string source, string detail, Exception? inner = null) =>
        new("PackManifestInvalid", ForkdErrorKind.InvalidData, $"manifest.toml in {source} is invalid: {detail}", source, inner)
        {
            Hint = "The pack is damaged or was not written by forkd; ask the publisher to re-export it.",
        };

    private static string FirstLine(string s)
    {
        var nl = s.IndexOf('\n', StringComparison.Ordinal);
        return nl < 0 ? s : s[..nl];
    }

    internal static string Printable(string s) => new(s.Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
