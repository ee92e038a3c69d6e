using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>Constants of forkd's pack format v1 (spec 1.12.1).</summary>
public static class PackFormat
{
    public const int Version = 1;

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

    /// <summary>A manifest is a few hundred bytes; anything beyond this is not a manifest.</summary>
    public const int MaxManifestBytes = 1024 * 1024;

    /// <summary>forkd's default pack name: the tag with '.' and '_' turned into '-'.</summary>
    public static string DefaultFileName(string tag) =>
        TagRule.Validate(tag).Replace('.', '-').Replace('_', '-') + FileSuffix;
}

/// <summary>One data file inside a pack, as the manifest lists it.</summary>
public sealed record PackFileEntry(string Path, long Size, string Sha256);

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
