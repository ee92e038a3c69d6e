using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>Constants of forkd's pack format: v1 (spec 1.12.1) for a standalone snapshot, v2 (spec 10.6) for a diff chain.</summary>
public static class PackFormat
{
    /// <summary>What a standalone snapshot is packed as (byte for byte the v1 forkd 0.1.3 reads).</summary>
    public const int Version = 1;

    /// <summary>forkd 0.5's manifest v2: <c>chain[]</c> root to head, each link's files under its <c>&lt;tag&gt;/</c> prefix.</summary>
    public const int ChainVersion = 2;

    /// <summary>forkd's <c>MAX_SUPPORTED_PACK_VERSION</c>.</summary>
    public const int MaxSupportedVersion = 2;

    public const string ManifestName = "manifest.toml";

    public const string FileSuffix = ".forkd-snapshot.tar.zst";

    /// <summary>
    /// Files a pack may carry, in the order they are written after the manifest: forkd's four, plus the
    /// kernel and initramfs our QEMU snapshots keep beside the memory image (children boot-restore from
    /// them by name, so a snapshot without them would not fork on another host). forkd unpacks any name,
    /// so packs with them still unpack with forkd; memory.bin stays last, as in forkd's packs.
    /// </summary>
    public static IReadOnlyList<string> DataFiles { get; } =
    [
        SnapshotFiles.Metadata, SnapshotFiles.VmState, SnapshotFiles.Rootfs,
        SnapshotFiles.Kernel, SnapshotFiles.Initramfs, SnapshotFiles.Memory,
    ];

    /// <summary>
    /// Files of a diff link in a v2 pack: the root link's list with <c>memory.diff</c> in place of <c>memory.bin</c> (its
    /// memory image is assembled from the chain; a cached <c>memory.bin</c> is never packed).
    /// </summary>
    public static IReadOnlyList<string> DiffLinkFiles { get; } =
    [
        SnapshotFiles.Metadata, SnapshotFiles.VmState, SnapshotFiles.Rootfs,
        SnapshotFiles.Kernel, SnapshotFiles.Initramfs, MemoryDiff.FileName,
    ];

    /// <summary>A manifest is a few hundred bytes; anything beyond this is not a manifest.</summary>
    public const int MaxManifestBytes = 1024 * 1024;

    /// <summary>forkd's default pack name: the tag with '.' and '_' turned into '-'.</summary>
    public static string DefaultFileName(string tag) =>
        TagRule.Validate(tag).Replace('.', '-').Replace('_', '-') + FileSuffix;
}

/// <summary>One data file inside a pack, as the manifest lists it.</summary>
public sealed record PackFileEntry(string Path, long Size, string Sha256);

/// <summary>
/// One link of a v2 pack's <c>chain[]</c>, root first: its tag, the prefix its files carry (<c>&lt;tag&gt;/</c>) and, for
/// every link but the root, its parent's tag and the SHA-256 of the parent's memory image it is a diff over.
/// </summary>
public sealed record PackChainLink(string Tag, string Prefix, string? ParentTag, string? ParentContentHash)
{
    public bool IsRoot => ParentTag is null;
}

/// <summary>What Export-ForkdPack wrote.</summary>
public sealed record PackInfo
{
    public required string Path { get; init; }

    public required string Tag { get; init; }

    /// <summary>Size of the .tar.zst file.</summary>
    public long PackedBytes { get; init; }

    /// <summary>Sum of the packed files' sizes.</summary>
    public long UnpackedBytes { get; init; }

    /// <summary>Unpacked / packed (forkd's "N× compression"); 0 for an empty pack.</summary>
    public double Ratio { get; init; }

    public IReadOnlyList<PackFileEntry> Files { get; init; } = [];

    /// <summary>The manifest's format version: 1 for a standalone snapshot, 2 for a diff chain.</summary>
    public int FormatVersion { get; init; } = PackFormat.Version;

    /// <summary>The tags of a v2 pack's chain, root first (empty for v1).</summary>
    public IReadOnlyList<string> Chain { get; init; } = [];

    public TimeSpan Duration { get; init; }

    public string? Description { get; init; }

    public string? BaseImage { get; init; }

    public int CompressionLevel { get; init; }

    public override string ToString() => Path;
}

/// <summary>What Publish-ForkdPack sent.</summary>
public sealed record PublishResult
{
    public required string Tag { get; init; }

    /// <summary>The upload URL with its query (the presigned signature) removed.</summary>
    public required string Uri { get; init; }

    public int StatusCode { get; init; }

    public long BytesSent { get; init; }

    public TimeSpan UploadDuration { get; init; }

    /// <summary>MiB per second over the upload (forkd's push rate).</summary>
    public double MiBPerSecond { get; init; }

    public required PackInfo Pack { get; init; }
}

/// <summary>Progress of a long hub operation: <see cref="Bytes"/> of <see cref="TotalBytes"/> (null when unknown).</summary>
public sealed record PackProgress(string Activity, string Status, long Bytes, long? TotalBytes, TimeSpan Elapsed)
{
    public double BytesPerSecond => Bytes / Math.Max(Elapsed.TotalSeconds, 0.001);

    public int? Percent => TotalBytes is > 0 ? (int)Math.Min(100, 100.0 * Bytes / TotalBytes.Value) : null;
}

/// <summary>Options for writing a pack.</summary>
public sealed record PackOptions
{
    public string? Description { get; init; }

    public string? BaseImage { get; init; }

    /// <summary>zstd level; forkd used the library default, 3.</summary>
    public int CompressionLevel { get; init; } = 3;

    public bool Overwrite { get; init; }
}
