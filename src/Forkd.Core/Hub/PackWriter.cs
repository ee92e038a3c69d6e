using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Forkd.Core.Store;
using Microsoft.Win32.SafeHandles;

namespace Forkd.Core.Hub;

/// <summary>
/// Writes a snapshot as a forkd pack: v1 for a standalone snapshot, v2 for a diff chain (PackWriter.Chain.cs). One read
/// of each file feeds both its SHA-256 and the
/// compressor; the manifest (which must come first but needs those hashes) goes into a raw zstd frame
/// whose size is known in advance, so it is written into the space left for it at the end. The file
/// appears under its final name only when complete (written beside it, then renamed).
/// </summary>
public sealed partial class PackWriter
{
    private const int ReadSize = 1024 * 1024;
    private const int PageSize = 4096;
    private readonly ForkdPaths _paths;

    public PackWriter(ForkdPaths paths)
    {
        _paths = paths ?? throw new ArgumentNullException(nameof(paths));
    }

    public static string ProducerVersion =>
        "Forkd.PowerShell " + (typeof(PackWriter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0");

    public Task<PackInfo> ExportAsync(string tag, string destination, PackOptions options, IProgress<PackProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        TagRule.Validate(tag);
        if (options.CompressionLevel is < 1 or > 19)
        {
            throw new ForkdException("PackCompressionLevelInvalid", ForkdErrorKind.InvalidArgument,
                $"compression level {options.CompressionLevel} is outside 1..19", options.CompressionLevel);
        }

        return Task.Factory.StartNew(() => Export(tag, Path.GetFullPath(destination), options, progress, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private PackInfo Export(string tag, string destination, PackOptions options, IProgress<PackProgress>? progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var dir = _paths.SnapshotDirectory(tag);
        using var tagLock = TagLock.Acquire(_paths, tag, "Export-ForkdPack");
        if (!Directory.Exists(dir))
        {
            throw SnapshotStore.NotFound(tag, dir);
        }

        // A diff snapshot is packed with its chain (manifest v2), its ancestors held shared meanwhile; a standalone one as v1.
        using var chain = SnapshotMetadata.Load(dir).IsDiff ? PlanChain(tag, ct) : null;
        var sources = chain?.Sources ?? CollectSources(tag, dir, "", root: true);
        var outputDir = Path.GetDirectoryName(destination)!;
        if (!Directory.Exists(outputDir))
        {
            throw new ForkdException("PackOutputDirectoryNotFound", ForkdErrorKind.NotFound,
                $"cannot write {destination}: directory {outputDir} does not exist", destination);
        }

        if (File.Exists(destination) && !options.Overwrite)
        {
            throw OutputExists(destination);
        }

        var now = DateTimeOffset.UtcNow;
        var manifest = new PackManifest
        {
            FormatVersion = chain is null ? PackFormat.Version : PackFormat.ChainVersion,
            Tag = tag,
            Description = options.Description,
            BaseImage = options.BaseImage,
            CreatedAt = PackManifest.FormatTimestamp(now),
            ForkdVersion = ProducerVersion,
            ParentTag = chain?.Links[^1].ParentTag,
            Chain = chain?.Links ?? [],
            Files = sources.Select(s => new PackFileEntry(s.Name, s.Size, new string('0', 64))).ToList(),
        };
        var reserved = ZstdFrames.RawFrameSize(ManifestEntry(manifest, now).Length);
        var total = sources.Sum(s => s.Size);

        var temp = Path.Combine(Path.GetDirectoryName(destination)!,
            $".{Path.GetFileName(destination)}.partial-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
        try
        {
            var entries = new List<PackFileEntry>();
            long end;
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                using (var frames = new FrameCompressor(handle, reserved, options.CompressionLevel, ct))
                {
                    var report = new ProgressThrottle(progress, "Exporting " + tag, total, clock);
                    foreach (var source in sources)
                    {
                        entries.Add(WriteEntry(frames, source, report, ct));
                    }

                    frames.Append(new byte[TarHeaderWriter.BlockSize * 2]); // end-of-archive marker
                    end = frames.Complete();
                    report.Final();
                }

                var final = manifest with { Files = entries };
                var frame = ZstdFrames.RawFrame(ManifestEntry(final, now));
                if (frame.Length != reserved)
                {
                    throw new InvalidOperationException("manifest size changed between reservation and write");
                }

                RandomAccess.Write(handle, frame, 0);
                manifest = final;
            }

            File.Move(temp, destination, options.Overwrite);
            return new PackInfo
            {
                Path = destination,
                Tag = tag,
                PackedBytes = end,
                UnpackedBytes = total,
                Ratio = end == 0 ? 0 : Math.Round((double)total / end, 2),
                Files = manifest.Files,
                FormatVersion = (int)manifest.FormatVersion,
                Chain = manifest.Chain.Select(l => l.Tag).ToList(),
                Duration = clock.Elapsed,
                Description = options.Description,
                BaseImage = options.BaseImage,
                CompressionLevel = options.CompressionLevel,
            };
        }
        catch (IOException) when (!options.Overwrite && File.Exists(destination))
        {
            throw OutputExists(destination);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static byte[] ManifestEntry(PackManifest manifest, DateTimeOffset now)
    {
        var text = Encoding.UTF8.GetBytes(manifest.ToToml());
        var entry = new byte[TarHeaderWriter.BlockSize + text.Length + TarHeaderWriter.Padding(text.Length)];
        TarHeaderWriter.Regular(PackFormat.ManifestName, text.Length, 0b110_100_100, now).CopyTo(entry, 0);
        text.CopyTo(entry, TarHeaderWriter.BlockSize);
        return entry;
    }

    private static PackFileEntry WriteEntry(FrameCompressor frames, Source source, ProgressThrottle report, CancellationToken ct)
    {
        frames.Append(TarHeaderWriter.Regular(source.Name, source.Size, source.Mode, source.ModifiedAt));
        using var hasher = new BackgroundHasher();
        if (source.Content is not null)
        {
            hasher.Add(source.Content, source.Content.Length, static _ => { });
            frames.Append(source.Content);
            report.Add(source.Content.Length);
        }
        else
        {
            using var stream = new FileStream(source.FilePath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            long left = source.Size;
            while (left > 0)
            {
                ct.ThrowIfCancellationRequested();
                var want = (int)Math.Min(ReadSize, left);
                var shared = new SharedBuffer(ReadSize);
                int n;
                try
                {
                    n = stream.ReadAtLeast(shared.Array.AsSpan(0, want), want, throwOnEndOfStream: false);
                }
                catch
                {
                    shared.Release();
                    shared.Release();
                    throw;
                }

                if (n == 0)
                {
                    shared.Release();
                    shared.Release();
                    throw new ForkdException("PackSourceChanged", ForkdErrorKind.Failed,
                        $"{source.FilePath} shrank while it was being packed", source.FilePath);
                }

                // One read feeds both: the hash on its own thread, the compressor from this one.
                hasher.Add(shared.Array, n, _ => shared.Release());
                try
                {
                    AppendSkippingZeroPages(frames, shared.Array.AsSpan(0, n));
                }
                finally
                {
                    shared.Release();
                }

                left -= n;
                report.Add(n);
            }
        }

        frames.Append(new byte[TarHeaderWriter.Padding(source.Size)]);
        return new PackFileEntry(source.Name, source.Size, hasher.Finish());
    }

    // Zero pages go to the compressor as a count, not as bytes: long runs become RLE frames.
    private static void AppendSkippingZeroPages(FrameCompressor frames, ReadOnlySpan<byte> data)
    {
        var runStart = 0;
        for (var pos = 0; pos < data.Length; pos += PageSize)
        {
            var page = data.Slice(pos, Math.Min(PageSize, data.Length - pos));
            if (page.IndexOfAnyExcept((byte)0) >= 0)
            {
                continue;
            }

            if (pos > runStart)
            {
                frames.Append(data[runStart..pos]);
            }

            frames.AppendZeros(page.Length);
            runStart = pos + page.Length;
        }

        if (runStart < data.Length)
        {
            frames.Append(data[runStart..]);
        }
    }

    /// <summary>The files of one snapshot, named <paramref name="prefix"/> + file name: forkd's list for a standalone one, the diff instead of memory.bin for a link.</summary>
    private static List<Source> CollectSources(string tag, string dir, string prefix, bool root)
    {
        var sources = new List<Source>();
        foreach (var name in root ? PackFormat.DataFiles : PackFormat.DiffLinkFiles)
        {
            var path = Path.Combine(dir, name);
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                continue;
            }

            byte[]? content = null;
            var size = info.Length;
            if (name == SnapshotFiles.Metadata)
            {
                content = PortableMetadata.MakePortable(File.ReadAllBytes(path), path);
                size = content.Length;
            }

            var mode = (int)File.GetUnixFileMode(path);
            sources.Add(new Source(prefix + name, path, size, mode, info.LastWriteTimeUtc, content));
        }

        foreach (var required in new[] { SnapshotFiles.VmState, root ? SnapshotFiles.Memory : MemoryDiff.FileName })
        {
            if (!sources.Any(s => s.Name == prefix + required))
            {
                throw new ForkdException("PackSourceIncomplete", ForkdErrorKind.InvalidData,
                    $"snapshot '{tag}' at {dir} has no '{required}'; nothing to pack", tag)
                {
                    Hint = "Only complete snapshots (vmstate and memory.bin) can be packed.",
                };
            }
        }

        return sources;
    }

    internal static ForkdException OutputExists(string destination) =>
        new("PackOutputExists", ForkdErrorKind.AlreadyExists, $"{destination} already exists", destination)
        {
            Hint = "Pass -Force to overwrite it, or choose another -Path.",
        };

    private sealed record Source(string Name, string FilePath, long Size, int Mode, DateTimeOffset ModifiedAt, byte[]? Content);
}

/// <summary>Reports progress at most every 100 ms, from whichever thread does the work.</summary>
internal sealed class ProgressThrottle(IProgress<PackProgress>? progress, string activity, long? total, Stopwatch clock)
{
    private long _bytes;
    private long _lastReport = -1;

    public long Bytes => _bytes;

    public void Add(long count)
    {
        _bytes += count;
        var now = clock.ElapsedMilliseconds;
        if (progress is not null && (_lastReport < 0 || now - _lastReport >= 100))
        {
            _lastReport = now;
            progress.Report(new PackProgress(activity, "", _bytes, total, clock.Elapsed));
        }
    }

    /// <summary>Sets the absolute count (e.g. compressed bytes consumed) and reports when due.</summary>
    public void Set(long bytes) => Add(bytes - _bytes);

    public void Final() => progress?.Report(new PackProgress(activity, "done", _bytes, total, clock.Elapsed));
}
