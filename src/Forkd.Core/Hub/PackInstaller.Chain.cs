using System.Text.Json.Nodes;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Hub;

/// <summary>
/// Installing a v2 (chain) pack. Before any data is extracted: each link gets its local tag (the head: -Tag or its own;
/// an ancestor: its own, or <c>ChainTagPrefix</c> + its own) and its lock; an ancestor whose tag exists here is reused
/// only when that snapshot's memory image has the SHA-256 the pack's next link records, and refused otherwise. After
/// extraction (every file hash checked by the extractor), still in staging: every link's snapshot.json is validated
/// and must agree with chain[], and every parent hash is checked against the image it names (the root's memory.bin,
/// each intermediate link's image assembled from it). Only then are the links installed, root first, each by the
/// store's atomic install; if one fails, the links this import installed are removed again, head side first. A kill
/// between two installs leaves only complete links whose parents are installed (importing again reuses them).
/// </summary>
public sealed partial class PackInstaller
{
    /// <summary>Called before each link is installed, with its local tag (tests make an install fail here).</summary>
    internal Action<string>? BeforeLinkInstall { get; set; }

    private sealed record LinkPlan(PackChainLink Link, string LocalTag, bool Reuse, TagLock Lock);

    private sealed class ChainImport(List<LinkPlan> links) : IDisposable
    {
        public List<LinkPlan> Links { get; } = links;

        public void Dispose()
        {
            foreach (var link in Links)
            {
                link.Lock.Dispose();
            }
        }
    }

    private ChainImport PlanChain(PackManifest manifest, ImportOptions options, string sourceName, CancellationToken ct)
    {
        var plan = new ChainImport([]);
        try
        {
            var chain = manifest.Chain;
            for (var i = 0; i < chain.Count; i++)
            {
                var link = chain[i];
                var isHead = i == chain.Count - 1;
                var local = isHead ? options.Tag ?? ManifestTag(link.Tag, sourceName) : TagRule.Validate((options.ChainTagPrefix ?? "") + link.Tag);
                if (plan.Links.Any(l => l.LocalTag == local))
                {
                    throw Conflict(sourceName, local, $"two links of the chain would be installed as '{local}'", options.ChainTagPrefix);
                }

                if (isHead)
                {
                    plan.Links.Add(new LinkPlan(link, local, Reuse: false, TagLock.Acquire(_paths, local, "Import-ForkdPack")));
                    CheckReplaceable(local, options.Force);
                }
                else if (!_store.Exists(local))
                {
                    plan.Links.Add(new LinkPlan(link, local, Reuse: false, TagLock.Acquire(_paths, local, "Import-ForkdPack (chain link)")));
                }
                else
                {
                    plan.Links.Add(new LinkPlan(link, local, Reuse: true, TagLock.AcquireShared(_paths, local, "Import-ForkdPack (reused chain link)")));
                    CheckReusable(local, chain[i + 1].ParentContentHash!, sourceName, options.ChainTagPrefix, ct);
                }
            }

            return plan;
        }
        catch
        {
            plan.Dispose();
            throw;
        }
    }

    /// <summary>A local snapshot stands in for a pack's link only when its (verified) memory image is the one the next link is a diff over.</summary>
    private void CheckReusable(string local, string expectedSha256, string sourceName, string? prefix, CancellationToken ct)
    {
        string actual;
        try
        {
            actual = MemoryImageHash.Get(_store.PrepareChainMemory(_store.Get(local), ct), ct);
        }
        catch (ForkdException ex) when (ex.Kind is ForkdErrorKind.InvalidData or ForkdErrorKind.NotFound)
        {
            throw Conflict(sourceName, local, $"snapshot '{local}' exists here but cannot be verified ({ex.Message})", prefix, ex);
        }

        if (!string.Equals(actual, expectedSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw Conflict(sourceName, local,
                $"snapshot '{local}' exists here with another memory image (SHA-256 {actual}) than the pack's link, which its diffs need ({expectedSha256})", prefix);
        }
    }

    private SnapshotInfo InstallChain(ChainImport plan, PackManifest manifest, string staging, ImportOptions options, string sourceName, CancellationToken ct)
    {
        // 1. Every link's metadata: schema, paths, and agreement with chain[]; parent tags become the local ones.
        var metadata = new List<SnapshotMetadata>();
        for (var i = 0; i < plan.Links.Count; i++)
        {
            var (link, dir) = (plan.Links[i].Link, LinkDirectory(staging, plan.Links[i].Link));
            var parentLocal = i == 0 ? null : plan.Links[i - 1].LocalTag;
            var root = PrepareMetadata(dir, options.Volumes, $"{sourceName} ({link.Prefix})", standalone: link.IsRoot, json => CheckLink(json, link, parentLocal, sourceName));
            if (root is null && !link.IsRoot)
            {
                throw PackManifest.ChainError("PackChainBroken", sourceName, $"link '{link.Tag}' has no {SnapshotFiles.Metadata}, so nothing says what it is a diff of");
            }

            metadata.Add(SnapshotMetadata.Load(dir));
        }

        // 2. Every parent hash, against the image it names: the root's memory.bin (hashed by the extractor), then each assembled link.
        var image = Path.Combine(LinkDirectory(staging, plan.Links[0].Link), SnapshotFiles.Memory);
        var imageHash = manifest.Files.Single(f => f.Path == plan.Links[0].Link.Prefix + SnapshotFiles.Memory).Sha256;
        for (var i = 1; i < plan.Links.Count; i++)
        {
            ct.ThrowIfCancellationRequested();
            var link = plan.Links[i].Link;
            if (!string.Equals(imageHash, link.ParentContentHash, StringComparison.OrdinalIgnoreCase))
            {
                throw new ForkdException("PackChainParentMismatch", ForkdErrorKind.InvalidData,
                    $"integrity check failed for {sourceName}: link '{link.Tag}' is a diff over a memory image with SHA-256 {link.ParentContentHash}, but the pack's '{plan.Links[i - 1].Link.Tag}' has {imageHash}", sourceName)
                { Hint = "The pack's chain does not fit together (tampered, or assembled from different snapshots); ask the publisher to export it again." };
            }

            var dir = LinkDirectory(staging, link);
            if (i == plan.Links.Count - 1)
            {
                MemoryDiff.ReadIndex(AssembledMemory.DiffPath(dir, metadata[i])); // the head's diff is checked, assembled at its first fork
                break;
            }

            image = AssembledMemory.Ensure(dir, metadata[i], image, imageHash, ct);
            imageHash = MemoryImageHash.Get(image, ct);
        }

        // 3. Install root first; roll back this import's links if one fails.
        ct.ThrowIfCancellationRequested();
        Failpoints.Hit("pack.before-install");
        var installed = new List<LinkPlan>();
        try
        {
            SnapshotInfo? head = null;
            foreach (var link in plan.Links.Where(l => !l.Reuse))
            {
                BeforeLinkInstall?.Invoke(link.LocalTag);
                var isHead = ReferenceEquals(link, plan.Links[^1]);
                head = _store.Install(link.Lock, LinkDirectory(staging, link.Link), replace: isHead && options.Force);
                installed.Add(link);
                Failpoints.Hit("pack.chain.after-link");
            }

            return head!;
        }
        catch
        {
            for (var i = installed.Count - 1; i >= 0; i--)
            {
                _store.RemoveHeld(installed[i].Lock);
            }

            throw;
        }
    }

    private static string LinkDirectory(string staging, PackChainLink link) => Path.Combine(staging, link.Tag);

    /// <summary>The link's snapshot.json must say what chain[] says; its parent becomes the parent's local tag.</summary>
    private static void CheckLink(JsonObject json, PackChainLink link, string? parentLocalTag, string sourceName)
    {
        if (link.IsRoot)
        {
            return; // PrepareMetadata refused a root that describes a diff
        }

        var parent = (string?)json["parent_tag"];
        var hash = (string?)json["parent_content_hash"];
        var diff = (string?)json["memory_diff"];
        if (parent != link.ParentTag || !string.Equals(hash, link.ParentContentHash, StringComparison.OrdinalIgnoreCase) || diff != MemoryDiff.FileName)
        {
            throw PackManifest.ChainError("PackChainBroken", sourceName,
                $"link '{link.Tag}': its {SnapshotFiles.Metadata} (parent '{PackExtractor.Printable(parent ?? "(none)")}', diff '{PackExtractor.Printable(diff ?? "(none)")}') does not match chain[] (parent '{link.ParentTag}', diff '{MemoryDiff.FileName}', the same parent_content_hash)");
        }

        json["parent_tag"] = parentLocalTag;
    }

    private static ForkdException Conflict(string sourceName, string tag, string why, string? prefix, Exception? inner = null) =>
        new("PackChainTagConflict", ForkdErrorKind.AlreadyExists, $"cannot import the chain in {sourceName}: {why}", tag, inner)
        {
            Hint = prefix is null
                ? "Pass -ChainTagPrefix <prefix> to install the pack's ancestors as <prefix><tag>, or remove or rename the local snapshot."
                : "Choose another -ChainTagPrefix.",
        };
}
