using System.Diagnostics;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Text;

namespace Forkd.Core.Hub;

/// <summary>Options for installing a pack.</summary>
public sealed record ImportOptions
{
    /// <summary>Local tag to install under; the manifest's tag when null.</summary>
    public string? Tag { get; init; }

    /// <summary>Replace an existing snapshot of the same tag.</summary>
    public bool Force { get; init; }

    /// <summary>
    /// Host files for the snapshot's volumes, matched by guest path. A pack never decides which host file a
    /// guest sees: volumes not bound here are imported unbound, and forking them fails with <c>VolumeUnbound</c>.
    /// </summary>
    public IReadOnlyList<VolumeSpec> Volumes { get; init; } = [];

    /// <summary>The largest total (sum of the manifest's file sizes) a pack may declare; see <see cref="DefaultMaxSize"/>.</summary>
    public long MaxSize { get; init; } = DefaultMaxSize;

    /// <summary>64 GiB: a memory image of the largest guest we would fork, with room for a root disk.</summary>
    public const long DefaultMaxSize = 64L << 30;

    /// <summary>
    /// A v2 (chain) pack installs its ancestors under <c>&lt;prefix&gt;&lt;tag&gt;</c> instead of their own tags (the head
    /// takes <see cref="Tag"/> or its own). Without it a local snapshot with an ancestor's tag is reused when its memory
    /// image has the SHA-256 the pack's next link records, and refused (<c>PackChainTagConflict</c>) otherwise.
    /// </summary>
    public string? ChainTagPrefix { get; init; }
}

/// <summary>
/// Installs a pack as a local snapshot, atomically: it is extracted and verified in a work dir in the
/// staging area (same filesystem as the store), then renamed into place under the tag's lock. A
/// replaced snapshot is renamed away first and deleted last, so the tag is never missing or half
/// written; an import killed midway leaves only its work dir, which the stale-work-dir sweep removes.
/// </summary>
public sealed partial class PackInstaller
{
    private readonly ForkdPaths _paths;
    private readonly SnapshotStore _store;

    public PackInstaller(ForkdPaths paths)
        : this(new SnapshotStore(paths))
    {
    }

    public PackInstaller(SnapshotStore store)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _paths = store.Paths;
    }

    public Task<SnapshotInfo> ImportFileAsync(string packPath, ImportOptions options, IProgress<PackProgress>? progress, CancellationToken cancellationToken)
    {
        var full = Path.GetFullPath(packPath);
        if (!Path.Exists(full) || Directory.Exists(full)) // Path.Exists: a FIFO or /dev/stdin is fine, File.Exists says no
        {
            throw new ForkdException("PackFileNotFound", ForkdErrorKind.NotFound, $"pack file not found: {full}", full);
        }

        return Task.Factory.StartNew(() =>
        {
            using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            return Import(stream, full, stream.CanSeek ? stream.Length : null, options, progress, cancellationToken); // a FIFO or /dev/stdin has no length
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Imports from any stream (a download), verifying while it reads: nothing is installed unless all of it checks out.</summary>
    public SnapshotInfo Import(Stream source, string sourceName, long? length, ImportOptions options, IProgress<PackProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Tag is not null)
        {
            TagRule.Validate(options.Tag);
        }

        var clock = Stopwatch.StartNew();
        var report = new ProgressThrottle(progress, "Importing " + sourceName, length, clock);
        var staging = WorkDirectories.Create(_paths, WorkDirKind.Unpack, options.Tag ?? "pack");
        TagLock? tagLock = null;
        ChainImport? chain = null;
        try
        {
            var manifest = PackExtractor.Extract(source, sourceName, staging, manifest =>
            {
                if (manifest.IsChain)
                {
                    chain = PlanChain(manifest, options, sourceName, ct); // local tags, locks and conflicts, before any data
                }
                else
                {
                    tagLock = TagLock.Acquire(_paths, options.Tag ?? ManifestTag(manifest.Tag, sourceName), "Import-ForkdPack");
                    CheckReplaceable(tagLock.Tag, options.Force);
                }

                CheckSize(manifest, options.MaxSize, sourceName);
            }, report.Set, ct);

            if (chain is not null)
            {
                var head = InstallChain(chain, manifest, staging, options, sourceName, ct);
                report.Final();
                return head;
            }

            PrepareMetadata(staging, options.Volumes, sourceName, standalone: true);
            ct.ThrowIfCancellationRequested();
            Failpoints.Hit("pack.before-install");
            var installed = _store.Install(tagLock!, staging, options.Force);
            report.Final();
            return installed;
        }
        finally
        {
            tagLock?.Dispose();
            chain?.Dispose();
            SafeDelete.Delete(staging);
        }
    }

    private static string ManifestTag(string tag, string source)
    {
        var problem = TagRule.Check(tag);
        if (problem is null)
        {
            return tag;
        }

        throw new ForkdException("PackManifestTagInvalid", ForkdErrorKind.InvalidData,
            $"pack {source} declares an unsafe tag in its manifest: {problem}", source)
        {
            Hint = "Pass -Tag <name> to install it under a tag of your choosing.",
        };
    }

    /// <summary>Refused before a byte is extracted; the store checks both again at install.</summary>
    private void CheckReplaceable(string tag, bool force)
    {
        if (!force)
        {
            _store.ThrowIfExists(tag);
        }
        else if (_store.Exists(tag))
        {
            _store.ThrowIfNotReplaceable(tag);
        }
    }

    /// <summary>
    /// Before a byte is written: the declared total must fit the limit and the free space of the data dir's file
    /// system. The extractor refuses any entry larger than declared, so nothing grows past this.
    /// </summary>
    private void CheckSize(PackManifest manifest, long maxSize, string source)
    {
        var declared = manifest.Files.Sum(f => f.Size);
        if (declared > maxSize)
        {
            throw new ForkdException("PackTooLarge", ForkdErrorKind.InvalidData,
                $"pack {source} declares {ByteSize.Format(declared)}, more than the limit of {ByteSize.Format(maxSize)}", source)
            {
                Hint = "If you trust the pack and expect a snapshot that large, raise the limit with -MaxSize.",
            };
        }

        var free = new DriveInfo(_paths.StagingDirectory).AvailableFreeSpace;
        if (declared > free)
        {
            throw new ForkdException("PackInsufficientSpace", ForkdErrorKind.Failed,
                $"pack {source} declares {ByteSize.Format(declared)}, but the file system of {_paths.StagingDirectory} has {ByteSize.Format(free)} free", source)
            {
                Hint = "Free some space (Remove-ForkdSnapshot, Remove-ForkdStaleWorkDir) or use a data dir on a larger file system.",
            };
        }
    }

    /// <summary>
    /// Checks snapshot.json against the schema and the path rules, drops the packing host's volume paths (binding
    /// the user's), and writes it back, all in staging: a pack that fails here never replaces anything.
    /// </summary>
    /// <param name="standalone">A v1 pack (or a chain's root): its snapshot.json must not describe a diff, whose parent the pack does not carry.</param>
    /// <param name="rewrite">Runs on the validated JSON before it is written back (a chain link's parent tag).</param>
    private static System.Text.Json.Nodes.JsonObject? PrepareMetadata(string staging, IReadOnlyList<VolumeSpec> bindings, string sourceName, bool standalone,
        Action<System.Text.Json.Nodes.JsonObject>? rewrite = null)
    {
        var file = Path.Combine(staging, SnapshotFiles.Metadata);
        var source = $"{SnapshotFiles.Metadata} in {sourceName}";
        var text = SnapshotMetadataSafety.ReadMetadataFile(file);
        if (text is null)
        {
            if (bindings.Count > 0)
            {
                SnapshotMetadataSafety.PrepareImported(new System.Text.Json.Nodes.JsonObject(), bindings, source); // throws: no volumes to bind
            }

            return null; // forkd's defaults: vmstate, memory.bin, no volumes
        }

        var root = SnapshotMetadataSchema.Validate(text, source);
        if (standalone && (root.ContainsKey("parent_tag") || root.ContainsKey("memory_diff")))
        {
            throw PackManifest.ChainError("PackChainBroken", sourceName,
                $"{source} describes a diff over '{PackExtractor.Printable((string?)root["parent_tag"] ?? "?")}', but the pack carries a standalone snapshot there (a missing link)");
        }

        SnapshotMetadataSafety.PrepareImported(root, bindings, source);
        SnapshotMetadataSafety.CheckPaths(root, staging, SnapshotMetadataSafety.UnsafeInPack, source);
        rewrite?.Invoke(root);
        var temp = file + ".tmp";
        File.WriteAllText(temp, root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }));
        File.Move(temp, file, overwrite: true);
        return root;
    }
}
