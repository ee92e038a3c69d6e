using System.Globalization;
using System.Text;
using Forkd.Core.Store;
using Tomlyn.Model;

namespace Forkd.Core.Hub;

/// <summary>
/// Manifest v2's <c>chain[]</c> (forkd 0.5, spec 10.6): one <c>[[chain]]</c> table per link, root first, each with
/// <c>tag</c>, <c>prefix</c> (<c>"&lt;tag&gt;/"</c>, the directory its files carry in the archive) and, except the
/// root, <c>parent_tag</c> (the link before it) and <c>parent_content_hash</c> (SHA-256 of that parent's memory image).
/// Everything a hostile pack could bend is refused here, before a byte is extracted, each with its own ErrorId.
/// </summary>
public sealed partial record PackManifest
{
    private void AppendChain(StringBuilder sb)
    {
        foreach (var link in Chain)
        {
            sb.Append("\n[[chain]]\n");
            sb.Append("tag = ").Append(Quote(link.Tag)).Append('\n');
            sb.Append("prefix = ").Append(Quote(link.Prefix)).Append('\n');
            if (link.ParentTag is not null)
            {
                sb.Append("parent_tag = ").Append(Quote(link.ParentTag)).Append('\n');
            }

            if (link.ParentContentHash is not null)
            {
                sb.Append("parent_content_hash = ").Append(Quote(link.ParentContentHash)).Append('\n');
            }
        }
    }

    /// <summary>The link prefix forkd writes: the tag and a slash.</summary>
    public static string PrefixOf(string tag) => tag + "/";

    private static List<PackChainLink> ParseChain(TomlTable table, PackManifest manifest, string source)
    {
        if (!table.TryGetValue("chain", out var value) || value is not TomlTableArray array || array.Count == 0)
        {
            throw Invalid(source, "a version 2 manifest needs a non-empty 'chain' array of tables ([[chain]])");
        }

        if (array.Count > SnapshotStore.MaxChainDepth)
        {
            throw ChainError("PackChainBroken", source, $"its chain has {array.Count} links, more than the {SnapshotStore.MaxChainDepth} a chain may have");
        }

        var links = new List<PackChainLink>();
        var tags = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in array)
        {
            var i = links.Count;
            var tag = LinkString(item, "tag", i, source) ?? throw Invalid(source, $"chain[{i}]: 'tag' is missing");
            var prefix = LinkString(item, "prefix", i, source) ?? throw Invalid(source, $"chain[{i}]: 'prefix' is missing");
            if (prefix.Length == 0 || prefix.Contains("..", StringComparison.Ordinal) || prefix.StartsWith('/') ||
                prefix.Contains('\\', StringComparison.Ordinal) || prefix.Contains('\0', StringComparison.Ordinal))
            {
                throw ChainError("PackChainPrefixUnsafe", source, $"chain[{i}] has the unsafe prefix '{Printable(prefix)}'");
            }

            if (TagRule.Check(tag) is { } problem)
            {
                throw ChainError("PackChainPrefixUnsafe", source, $"chain[{i}] has an unsafe tag: {problem}");
            }

            if (prefix != PrefixOf(tag))
            {
                throw ChainError("PackChainPrefixUnsafe", source, $"chain[{i}] ('{tag}') has the prefix '{Printable(prefix)}'; a link's files live under '{PrefixOf(tag)}'");
            }

            if (!tags.Add(tag))
            {
                throw ChainError("PackChainDuplicateTag", source, $"the tag '{tag}' appears twice in its chain");
            }

            var parent = LinkString(item, "parent_tag", i, source);
            var hash = LinkString(item, "parent_content_hash", i, source);
            if (i == 0 && (parent is not null || hash is not null))
            {
                throw ChainError("PackChainBroken", source, $"its root link '{tag}' is a diff over '{Printable(parent ?? "?")}', which the pack does not carry (a missing link)");
            }

            if (i > 0)
            {
                if (parent != links[i - 1].Tag)
                {
                    throw ChainError("PackChainBroken", source,
                        $"chain[{i}] ('{tag}') names the parent '{Printable(parent ?? "(none)")}', but the link before it is '{links[i - 1].Tag}' (a missing link, a loop or links out of order)");
                }

                if (hash is null || !IsSha256Hex(hash))
                {
                    throw Invalid(source, $"chain[{i}] ('{tag}'): 'parent_content_hash' is missing or not 64 hex digits");
                }
            }

            links.Add(new PackChainLink(tag, prefix, parent, hash?.ToLowerInvariant()));
        }

        if (links[^1].Tag != manifest.Tag)
        {
            throw ChainError("PackChainBroken", source, $"its chain ends at '{links[^1].Tag}', but the manifest's tag is '{Printable(manifest.Tag)}'");
        }

        if (manifest.ParentTag is not null && manifest.ParentTag != links[^1].ParentTag)
        {
            throw ChainError("PackChainBroken", source, $"its parent_tag '{Printable(manifest.ParentTag)}' is not the head's parent in chain[]");
        }

        return links;
    }

    private static string? LinkString(TomlTable item, string key, int index, string source)
    {
        if (!item.TryGetValue(key, out var value))
        {
            return null;
        }

        return value as string ?? throw Invalid(source, $"chain[{index.ToString(CultureInfo.InvariantCulture)}]: '{key}' must be a string");
    }

    internal static ForkdException ChainError(string errorId, string source, string detail) =>
        new(errorId, ForkdErrorKind.InvalidData, $"malformed pack {source}: {detail}", source)
        {
            Hint = "Only import packs from sources you trust; this one is not a valid forkd pack v2 (diff chain).",
        };
}
