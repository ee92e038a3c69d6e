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

    public PackInstaller(ForkdPaths paths)
    {
        _paths = paths ?? throw new ArgumentNullException(nameof(paths));
    }

    /// <summary>Running children of a tag; a snapshot they map is not replaced.</summary>
    public Func<string, IReadOnlyList<string>>? RunningChildrenOf { get; init; }

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
            Install(staging, tag!, options.Force);
            report.Final();
            return new SnapshotStore(_paths).Get(tag!);
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

    private void CheckReplaceable(string tag, bool force)
    {
        var dest = _paths.SnapshotDirectory(tag);
        if (!Directory.Exists(dest))
        {
            return;
        }

        if (!force)
        {
            throw new ForkdException("SnapshotExists", ForkdErrorKind.AlreadyExists,
                $"tag '{tag}' already exists at {dest}", tag)
            {
                Hint = "Pass -Force to replace it, or -Tag <name> to install the pack under another tag.",
            };
        }

        var running = RunningChildrenOf?.Invoke(tag) ?? [];
        if (running.Count > 0)
        {
            throw new ForkdException("SnapshotInUse", ForkdErrorKind.InUse,
                $"snapshot '{tag}' has {running.Count} running child(ren) ({string.Join(", ", running)}); stop them before replacing it", tag);
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

    private void Install(string staging, string tag, bool force)
    {
        var dest = _paths.SnapshotDirectory(tag);
        Directory.CreateDirectory(_paths.SnapshotsDirectory);
        File.SetUnixFileMode(staging, (UnixFileMode)0b111_101_101);
        if (!Directory.Exists(dest))
        {
            Directory.Move(staging, dest);
            return;
        }

        if (!force)
        {
            CheckReplaceable(tag, force); // throws: it appeared since the manifest was read
        }

        // Move the old one aside (same filesystem, atomic), put the new one in, then delete the old.
        var doomedRoot = WorkDirectories.Create(_paths, WorkDirKind.Remove, tag);
        var doomed = Path.Combine(doomedRoot, "snapshot");
        Directory.Move(dest, doomed);
        try
        {
            Directory.Move(staging, dest);
        }
        catch
        {
            Directory.Move(doomed, dest);
            SafeDelete.Delete(doomedRoot);
            throw;
        }

        SafeDelete.Delete(doomedRoot);
    }
}
