using System.Diagnostics;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>Options for installing a pack.</summary>
public sealed record ImportOptions
{
    /// <summary>Local tag to install under; the manifest's tag when null.</summary>
    public string? Tag { get; init; }

    /// <summary>Replace an existing snapshot of the same tag.</summary>
    public bool Force { get; init; }
}

/// <summary>
/// Installs a pack as a local snapshot, atomically: it is extracted and verified in a work dir in the
/// staging area (same filesystem as the store), then renamed into place under the tag's lock. A
/// replaced snapshot is renamed away first and deleted last, so the tag is never missing or half
/// written; an import killed midway leaves only its work dir, which the stale-work-dir sweep removes.
/// </summary>
public sealed class PackInstaller
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
        string? tag = null;
        try
        {
            PackExtractor.Extract(source, sourceName, staging, manifest =>
            {
                tag = options.Tag ?? ManifestTag(manifest.Tag, sourceName);
                tagLock = TagLock.Acquire(_paths, tag, "Import-ForkdPack");
                CheckReplaceable(tag, options.Force);
            }, report.Set, ct);

            NormalizeMetadata(staging);
            ct.ThrowIfCancellationRequested();
            Failpoints.Hit("pack.before-install");
            var installed = _store.Install(tagLock!, staging, options.Force);
            report.Final();
            return installed;
        }
        finally
        {
            tagLock?.Dispose();
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
            _store.ThrowIfChildrenRun(tag, "replace it");
        }
    }

    private static void NormalizeMetadata(string staging)
    {
        var file = Path.Combine(staging, SnapshotFiles.Metadata);
        if (!File.Exists(file))
        {
            return;
        }

        var original = File.ReadAllBytes(file);
        var portable = PortableMetadata.MakePortable(original, file);
        if (!ReferenceEquals(original, portable))
        {
            var temp = file + ".tmp";
            File.WriteAllBytes(temp, portable);
            File.Move(temp, file, overwrite: true);
        }
    }
}
