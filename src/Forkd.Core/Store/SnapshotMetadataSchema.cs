using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Store;

/// <summary>
/// The schema of <c>snapshot.json</c>: every key we or forkd write, its JSON type and its range. A file that
/// breaks it is refused as a whole (<c>SnapshotMetadataInvalid</c>, naming the field) before anything trusts
/// a value in it, so a pack with <c>"volumes": 5</c> is never installed and a damaged snapshot is reported,
/// not half-read. Top-level and per-volume keys are closed lists; inside <c>backend_config</c> unknown keys
/// may carry plain scalars only (never anything that looks like a path), so a backend can add a setting
/// without opening a way to name host files. A new key that holds a path must be added here.
/// </summary>
public static class SnapshotMetadataSchema
{
    /// <summary>forkd writes a few hundred bytes; ours stays under a few KiB.</summary>
    public const int MaxBytes = 1024 * 1024;

    public const int MaxStringLength = 4096;

    /// <summary>Volumes per snapshot (vdb..vdy), as the engine's volume rules allow.</summary>
    public const int MaxVolumes = 24;

    private delegate void Rule(JsonNode? value, string field, Ctx ctx);

    private sealed record Ctx(string Source);

    private static readonly Dictionary<string, Rule> TopLevel = new(StringComparer.Ordinal)
    {
        ["vmstate"] = Text(required: true),
        ["memory"] = Text(required: true),
        ["volumes"] = VolumeList,
        ["created_at"] = Timestamp,
        ["created_by"] = Text(),
        ["backend"] = OneOf("qemu", "firecracker"),
        ["accelerator"] = OneOf("kvm", "tcg"),
        ["recipe"] = Text(),
        ["memory_mib"] = Integer(1, 1 << 20),
        ["vcpu_count"] = Integer(1, 256),
        ["backend_config"] = (v, f, c) => { }, // checked after the backend is known
        // A diff snapshot's link to its parent (forkd 0.5) and where a checkpoint came from.
        ["parent_tag"] = Name(),
        ["parent_content_hash"] = Text(),
        ["memory_diff"] = Name(),
        ["source"] = Closed(new(StringComparer.Ordinal)
        {
            ["kind"] = OneOf("checkpoint", "merge"),
            ["child_id"] = Name(),
            ["parent_tag"] = Name(),
            ["mode"] = OneOf("full", "diff"),
            ["pause_ms"] = Number(0, 1e9),
            ["bytes_written"] = Integer(0, long.MaxValue),
            ["chain"] = ArrayOf(64, Name(required: true)),
        }),
    };

    private static readonly Dictionary<string, Rule> VolumeKeys = new(StringComparer.Ordinal)
    {
        ["host_path"] = Text(), // null or "" once an import dropped it: the user binds it on this host
        ["guest_path"] = GuestPath,
        ["read_only"] = Boolean(),
    };

    private static readonly Dictionary<string, Rule> QemuConfig = new(StringComparer.Ordinal)
    {
        // Typed; only the kernel is required (a config without the others is refused when a child starts).
        ["machine"] = Text(),
        ["kernel"] = Text(required: true),
        ["initrd"] = Text(),
        ["append"] = Text(),
        ["memory_mib"] = Integer(1, 1 << 20),
        ["vcpu_count"] = Integer(1, 256),
        ["accelerator"] = OneOf("kvm", "tcg"),
        ["agent_port"] = Name(),
        ["drives"] = ArrayOf(24 + 1, Closed(new(StringComparer.Ordinal)
        {
            ["id"] = Name(required: true),
            ["path"] = Text(required: true, allowEmpty: true),
            ["read_only"] = Boolean(),
            ["root"] = Boolean(),
        })),
        ["nic_mac"] = Text(),
        ["vmstate_header_bytes"] = Integer(0, 1 << 30), // a checkpoint's composed vmstate: where the parent's header ends
    };

    private static readonly Dictionary<string, Rule> FirecrackerConfig = new(StringComparer.Ordinal)
    {
        ["backend"] = OneOf("firecracker"),
        ["vcpuCount"] = Integer(1, 256),
        ["memoryMiB"] = Integer(1, 1 << 20),
        ["guestCid"] = Integer(3, uint.MaxValue),
        ["vsockSocket"] = Name(),
        ["agentVsockPort"] = Integer(1, uint.MaxValue),
        ["kernel"] = Text(),
        ["initrd"] = Text(),
        ["drives"] = ArrayOf(24 + 1, Closed(new(StringComparer.Ordinal)
        {
            ["id"] = Name(required: true),
            ["file"] = Name(required: true),
            ["hostPath"] = Text(required: true, allowEmpty: true),
            ["readOnly"] = Boolean(),
            ["isRoot"] = Boolean(),
            ["savedCopy"] = Name(),
        })),
        ["nic"] = Closed(new(StringComparer.Ordinal)
        {
            ["deviceId"] = Name(required: true),
            ["tap"] = Name(),
            ["mac"] = Text(),
        }),
    };

    /// <summary>Parses and checks <paramref name="json"/>; the returned object obeys the schema.</summary>
    public static JsonObject Validate(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        var ctx = new Ctx(source);
        if (json.Length > MaxBytes)
        {
            throw Invalid(ctx, "(document)", $"is {json.Length} characters; snapshot.json is never larger than {MaxBytes}");
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException)
        {
            throw Invalid(ctx, "(document)", $"is not valid JSON ({ex.Message})", ex);
        }

        if (node is not JsonObject root)
        {
            throw Invalid(ctx, "(document)", "must be a JSON object");
        }

        Closed(TopLevel)(root, "", ctx);
        if (root["backend_config"] is { } config)
        {
            var qemu = string.Equals((string?)root["backend"], "qemu", StringComparison.OrdinalIgnoreCase);
            OpenScalars(qemu ? QemuConfig : FirecrackerConfig)(config, "backend_config", ctx);
        }

        return root;
    }

    private static string Join(string parent, string key) => parent.Length == 0 ? key : parent + "." + key;

    private static JsonValueKind Kind(JsonNode? v) => v?.GetValueKind() ?? JsonValueKind.Null;

    private static Rule Closed(Dictionary<string, Rule> keys) => (v, field, ctx) => CheckObject(v, field, ctx, keys, openScalars: false);

    private static Rule OpenScalars(Dictionary<string, Rule> keys) => (v, field, ctx) => CheckObject(v, field, ctx, keys, openScalars: true);

    private static void CheckObject(JsonNode? v, string field, Ctx ctx, Dictionary<string, Rule> keys, bool openScalars)
    {
        if (Missing.Is(v))
        {
            return; // an optional object (a NIC, the backend settings)
        }

        if (v is not JsonObject obj)
        {
            throw Invalid(ctx, field.Length == 0 ? "(document)" : field, $"must be an object, not {Describe(v)}");
        }

        foreach (var (key, value) in obj)
        {
            var name = Join(field, key);
            if (keys.TryGetValue(key, out var rule))
            {
                rule(value, name, ctx);
            }
            else if (!openScalars)
            {
                throw Invalid(ctx, name, "is not a known key");
            }
            else
            {
                UnknownScalar(value, name, ctx);
            }
        }

        foreach (var (key, rule) in keys)
        {
            if (!obj.ContainsKey(key))
            {
                rule(Missing.Instance, Join(field, key), ctx);
            }
        }
    }

    /// <summary>Stands in for an absent key so that each rule decides whether it is required.</summary>
    private sealed class Missing
    {
        public static readonly JsonNode Instance = JsonValue.Create("\u0000forkd-missing\u0000");

        public static bool Is(JsonNode? v) => ReferenceEquals(v, Instance);
    }

    private static void UnknownScalar(JsonNode? v, string field, Ctx ctx)
    {
        switch (Kind(v))
        {
            case JsonValueKind.Null or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Number:
                return;
            case JsonValueKind.String:
                var s = (string)v!;
                if (s.Length > 256 || s.Contains('/', StringComparison.Ordinal) || s.Contains('\\', StringComparison.Ordinal) ||
                    s.StartsWith('~') || s.Contains('\0', StringComparison.Ordinal))
                {
                    throw Invalid(ctx, field, "is not a setting this version knows, and an unknown setting may not hold a path");
                }

                return;
            default:
                throw Invalid(ctx, field, $"is not a setting this version knows, and an unknown setting may only be a plain value, not {Describe(v)}");
        }
    }

    private static Rule Text(bool required = false, bool allowEmpty = true) => (v, field, ctx) =>
    {
        if (Missing.Is(v))
        {
            if (required)
            {
                throw Invalid(ctx, field, "is required");
            }

            return;
        }

        if (Kind(v) == JsonValueKind.Null && !required)
        {
            return;
        }

        if (Kind(v) != JsonValueKind.String)
        {
            throw Invalid(ctx, field, $"must be a string, not {Describe(v)}");
        }

        var s = (string)v!;
        if (s.Length > MaxStringLength || s.Contains('\0', StringComparison.Ordinal) || (!allowEmpty && s.Length == 0))
        {
            throw Invalid(ctx, field, s.Length == 0 ? "must not be empty" : $"must be a string of at most {MaxStringLength} characters without NUL");
        }
    };

    /// <summary>A file or device name: letters, digits, '.', '-', '_' (never a path).</summary>
    private static Rule Name(bool required = false) => (v, field, ctx) =>
    {
        Text(required)(v, field, ctx);
        if (Kind(v) == JsonValueKind.String && !Missing.Is(v))
        {
            var s = (string)v!;
            if (s.Length is 0 or > 128 || s is "." or ".." || !s.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            {
                throw Invalid(ctx, field, $"'{Printable(s)}' must be 1-128 letters, digits, '.', '-' or '_'");
            }
        }
    };

    private static Rule OneOf(params string[] allowed) => (v, field, ctx) =>
    {
        Text()(v, field, ctx);
        if (Kind(v) == JsonValueKind.String && !Missing.Is(v) && !allowed.Contains((string)v!, StringComparer.OrdinalIgnoreCase))
        {
            throw Invalid(ctx, field, $"is '{Printable((string)v!)}'; expected {string.Join(" or ", allowed)}");
        }
    };

    private static Rule Integer(long min, long max) => (v, field, ctx) =>
    {
        if (Missing.Is(v) || Kind(v) == JsonValueKind.Null)
        {
            return;
        }

        if (Kind(v) != JsonValueKind.Number || !v!.AsValue().TryGetValue<long>(out var n))
        {
            throw Invalid(ctx, field, $"must be a whole number, not {Describe(v)}");
        }

        if (n < min || n > max)
        {
            throw Invalid(ctx, field, $"is {n}; expected {min}..{max}");
        }
    };

    private static Rule Number(double min, double max) => (v, field, ctx) =>
    {
        if (Missing.Is(v) || Kind(v) == JsonValueKind.Null)
        {
            return;
        }

        if (Kind(v) != JsonValueKind.Number || !v!.AsValue().TryGetValue<double>(out var n) || !double.IsFinite(n))
        {
            throw Invalid(ctx, field, $"must be a number, not {Describe(v)}");
        }

        if (n < min || n > max)
        {
            throw Invalid(ctx, field, $"is {n}; expected {min}..{max}");
        }
    };

    private static Rule Boolean() => (v, field, ctx) =>
    {
        if (!Missing.Is(v) && Kind(v) is not (JsonValueKind.True or JsonValueKind.False))
        {
            throw Invalid(ctx, field, $"must be true or false, not {Describe(v)}");
        }
    };

    private static void Timestamp(JsonNode? v, string field, Ctx ctx)
    {
        Text()(v, field, ctx);
        if (Kind(v) == JsonValueKind.String && !Missing.Is(v) && !v!.AsValue().TryGetValue<DateTimeOffset>(out _))
        {
            throw Invalid(ctx, field, "must be an ISO 8601 timestamp");
        }
    }

    private static void GuestPath(JsonNode? v, string field, Ctx ctx)
    {
        Text(required: true, allowEmpty: false)(v, field, ctx);
        var s = (string)v!;
        if (!s.StartsWith('/') || s == "/" || s.Any(c => c == ',' || char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw Invalid(ctx, field, $"'{Printable(s)}' must be an absolute guest path other than '/', without ',' or whitespace");
        }
    }

    private static void VolumeList(JsonNode? v, string field, Ctx ctx)
    {
        if (Missing.Is(v))
        {
            return; // forkd's serde default: []
        }

        ArrayOf(MaxVolumes, Closed(VolumeKeys))(v, field, ctx);
    }

    private static Rule ArrayOf(int maxItems, Rule item) => (v, field, ctx) =>
    {
        if (Missing.Is(v))
        {
            return;
        }

        if (v is not JsonArray array)
        {
            throw Invalid(ctx, field, $"must be a list, not {Describe(v)}");
        }

        if (array.Count > maxItems)
        {
            throw Invalid(ctx, field, $"has {array.Count} entries; at most {maxItems} are supported");
        }

        for (var i = 0; i < array.Count; i++)
        {
            item(array[i], $"{field}[{i}]", ctx);
        }
    };

    private static string Describe(JsonNode? v) => Kind(v) switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.Number => "a number",
        JsonValueKind.String => "a string",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "a list",
        JsonValueKind.Object => "an object",
        _ => "an unknown value",
    };

    private static string Printable(string s) => new(s.Take(200).Select(c => char.IsControl(c) ? '?' : c).ToArray());

    private static ForkdException Invalid(Ctx ctx, string field, string why, Exception? inner = null) =>
        new("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData, $"{ctx.Source}: '{field}' {why}", field, inner)
        {
            Hint = "snapshot.json is damaged or was edited by hand; restore it from the original snapshot or pack, or remove the snapshot.",
        };
}
