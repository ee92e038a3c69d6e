using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Forkd.Core.Store;

/// <summary>Where a checkpointed or merged snapshot came from (recorded, never needed to fork it).</summary>
public sealed record SnapshotSource
{
    /// <summary><c>checkpoint</c> (Checkpoint-ForkdChild) or <c>merge</c> (Merge-ForkdSnapshot).</summary>
    [JsonPropertyName("kind")]
    public string Kind { get; init; } = "checkpoint";

    [JsonPropertyName("child_id")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ChildId { get; init; }

    /// <summary>The snapshot the source child was forked from (or the merged chain's head).</summary>
    [JsonPropertyName("parent_tag")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ParentTag { get; init; }

    /// <summary><c>full</c> or <c>diff</c>.</summary>
    [JsonPropertyName("mode")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Mode { get; init; }

    [JsonPropertyName("pause_ms")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? PauseMilliseconds { get; init; }

    [JsonPropertyName("bytes_written")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? BytesWritten { get; init; }

    /// <summary>The tags of a merged chain, root to head.</summary>
    [JsonPropertyName("chain")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Chain { get; init; }
}

/// <summary>A volume attached to every child of a snapshot (forkd's <c>VolumeSpec</c>).</summary>
/// <remarks>An empty <see cref="HostPath"/> is a volume imported from a pack and not bound on this host yet.</remarks>
public sealed record VolumeSpec(
    [property: JsonPropertyName("host_path")] string HostPath,
    [property: JsonPropertyName("guest_path")] string GuestPath,
    [property: JsonPropertyName("read_only")] bool ReadOnly = false);

/// <summary>
/// <c>snapshot.json</c>. The first three fields are forkd 0.1.3's; the rest are ours (forkd ignores
/// unknown fields). Unlike forkd, <see cref="VmState"/> and <see cref="Memory"/> are written relative to
/// the snapshot directory, so a snapshot moved to another host or data dir still resolves; absolute
/// paths found in forkd-made files are rebased onto the directory the file sits in.
/// </summary>
public sealed record SnapshotMetadata
{
    [JsonPropertyName("vmstate")]
    public string VmState { get; init; } = SnapshotFiles.VmState;

    [JsonPropertyName("memory")]
    public string Memory { get; init; } = SnapshotFiles.Memory;

    [JsonPropertyName("volumes")]
    public IReadOnlyList<VolumeSpec> Volumes { get; init; } = [];

    [JsonPropertyName("created_at")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>What made the snapshot, e.g. <c>Forkd 0.2.0</c>.</summary>
    [JsonPropertyName("created_by")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? CreatedBy { get; init; }

    /// <summary><c>qemu</c> or <c>firecracker</c>; absent in forkd-made snapshots (which are Firecracker).</summary>
    [JsonPropertyName("backend")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Backend { get; init; }

    /// <summary><c>kvm</c> or <c>tcg</c>.</summary>
    [JsonPropertyName("accelerator")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Accelerator { get; init; }

    [JsonPropertyName("recipe")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Recipe { get; init; }

    [JsonPropertyName("memory_mib")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? MemoryMiB { get; init; }

    [JsonPropertyName("vcpu_count")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? VcpuCount { get; init; }

    /// <summary>Backend-specific settings children need (kernel path, machine options, image hash…).</summary>
    [JsonPropertyName("backend_config")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonObject? BackendConfig { get; init; }

    // --- Branching (Checkpoint-ForkdChild): what a snapshot is a diff of, and where it came from ---

    /// <summary>forkd 0.5's <c>parent_tag</c>: the snapshot this one's memory diff applies to (null for a standalone snapshot).</summary>
    [JsonPropertyName("parent_tag")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ParentTag { get; init; }

    /// <summary>forkd 0.5's <c>parent_content_hash</c>: SHA-256 of the parent's memory image when the diff was taken.</summary>
    [JsonPropertyName("parent_content_hash")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ParentContentHash { get; init; }

    /// <summary>The diff file (relative to the snapshot dir) when this is a diff snapshot; its memory image is assembled on first fork.</summary>
    [JsonPropertyName("memory_diff")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? MemoryDiff { get; init; }

    /// <summary>The running child this snapshot was checkpointed from, or the chain it was merged from.</summary>
    [JsonPropertyName("source")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SnapshotSource? Source { get; init; }

    /// <summary>True when children need the parent chain (a diff over <see cref="ParentTag"/>).</summary>
    [JsonIgnore]
    public bool IsDiff => ParentTag is not null && MemoryDiff is not null;

    // --- end of branching block ---

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, IndentSize = 2 };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    /// <summary>
    /// Parses <c>snapshot.json</c> after checking it against <see cref="SnapshotMetadataSchema"/>; any problem is a
    /// <see cref="ForkdException"/> (<c>SnapshotMetadataInvalid</c>, naming the field), never a raw JSON error.
    /// </summary>
    public static SnapshotMetadata Parse(string json, string sourceForErrors) =>
        FromValidated(SnapshotMetadataSchema.Validate(json, sourceForErrors), sourceForErrors);

    /// <summary>
    /// Reads <c>snapshot.json</c>, or synthesises forkd's defaults when it is absent. The file is checked like an
    /// imported one (schema, then every file it names must lie in <paramref name="snapshotDirectory"/>), because a
    /// snapshot directory may have been copied in by hand: <c>SnapshotMetadataInvalid</c> or
    /// <c>SnapshotMetadataUnsafe</c>, for the store to report per snapshot.
    /// </summary>
    public static SnapshotMetadata Load(string snapshotDirectory)
    {
        var file = Path.Combine(snapshotDirectory, SnapshotFiles.Metadata);
        var text = SnapshotMetadataSafety.ReadMetadataFile(file);
        if (text is null)
        {
            return new SnapshotMetadata();
        }

        var root = SnapshotMetadataSchema.Validate(text, file);
        SnapshotMetadataSafety.CheckPaths(root, snapshotDirectory, SnapshotMetadataSafety.UnsafeInStore, file);
        return FromValidated(root, file);
    }

    private static SnapshotMetadata FromValidated(JsonObject root, string source)
    {
        foreach (var volume in (root["volumes"] as JsonArray ?? []).OfType<JsonObject>())
        {
            volume["host_path"] ??= ""; // dropped at import: unbound until the user binds it
        }

        try
        {
            return root.Deserialize<SnapshotMetadata>(Options) ?? throw new JsonException("null document");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or NotSupportedException)
        {
            throw new ForkdException("SnapshotMetadataInvalid", ForkdErrorKind.InvalidData,
                $"cannot read {source}: {ex.Message}", source, ex);
        }
    }

    /// <summary>Writes atomically (temp file + rename) so a crash never leaves half a metadata file.</summary>
    public void Save(string snapshotDirectory)
    {
        var file = Path.Combine(snapshotDirectory, SnapshotFiles.Metadata);
        Host.SafeFile.WriteAtomicNoFollow(file, ToJson()); // unique temp name, never written through a link
    }

    /// <summary>The memory image's real path: relative names and foreign absolute paths both resolve inside the directory.</summary>
    public string ResolveMemory(string snapshotDirectory) => Rebase(snapshotDirectory, Memory, SnapshotFiles.Memory);

    public string ResolveVmState(string snapshotDirectory) => Rebase(snapshotDirectory, VmState, SnapshotFiles.VmState);

    private static string Rebase(string dir, string recorded, string fallbackName)
    {
        var name = Path.GetFileName(recorded);
        return Path.Combine(dir, string.IsNullOrEmpty(name) ? fallbackName : name);
    }
}
