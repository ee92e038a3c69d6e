using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>
/// forkd 0.1.3 wrote the packing host's absolute <c>vmstate</c>/<c>memory</c> paths into
/// <c>snapshot.json</c> and used them verbatim, so an unpacked snapshot only forked where the same
/// paths existed. Packs we write and snapshots we install carry the bare file names instead; every
/// other field (ours, forkd's, future ones) is kept as it is.
/// </summary>
public static class PortableMetadata
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, IndentSize = 2 };

    /// <summary>The JSON with <c>vmstate</c> and <c>memory</c> as bare names; the same bytes when they already are.</summary>
    public static byte[] MakePortable(byte[] json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(json) as JsonObject ?? throw new JsonException("not a JSON object");
        }
        catch (JsonException ex)
        {
            throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData,
                $"cannot parse {source}: {ex.Message}", source, ex);
        }

        var changed = Rewrite(obj, "vmstate", SnapshotFiles.VmState) | Rewrite(obj, "memory", SnapshotFiles.Memory);
        return changed ? Encoding.UTF8.GetBytes(obj.ToJsonString(Indented)) : json;
    }

    private static bool Rewrite(JsonObject obj, string key, string canonical)
    {
        if (obj[key] is JsonValue value && value.TryGetValue<string>(out var recorded) && recorded == canonical)
        {
            return false;
        }

        if (!obj.ContainsKey(key))
        {
            return false; // forkd synthesises the default names itself
        }

        obj[key] = canonical;
        return true;
    }
}
