using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Hub;
using Forkd.Core.Store;

namespace Forkd.PowerShell.Commands;

/// <summary>Verifies and installs a pack as a local snapshot, from a file or a URL (forkd's <c>unpack</c> and <c>pull</c>).</summary>
[Cmdlet(VerbsData.Import, "ForkdPack", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet, HelpUri = HelpLinks.Base + "Import-ForkdPack.md")]
[OutputType(typeof(SnapshotInfo))]
public sealed class ImportForkdPackCommand : ForkdJobCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";
    private const string UriSet = "Uri";

    /// <summary>Pack files; wildcards expand to every match.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Pack files taken exactly as written (no wildcard expansion); Get-ChildItem output binds here.</summary>
    [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>An http(s) URL, or <c>owner/tag</c> resolved against the hub.</summary>
    [Parameter(Mandatory = true, ParameterSetName = UriSet)]
    [ValidateNotNullOrEmpty]
    public string Uri { get; set; } = "";

    /// <summary>Base URL for the <c>owner/tag</c> short form; <c>$env:FORKD_HUB_URL</c> when omitted.</summary>
    [Parameter(ParameterSetName = UriSet)]
    [ValidateNotNullOrEmpty]
    public string? Hub { get; set; }

    /// <summary>Install under this tag instead of the one in the pack's manifest.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string? Tag { get; set; }

    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>A chain pack (v2) installs its ancestors as <c>&lt;prefix&gt;&lt;tag&gt;</c> (for tags that exist here with other content).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ChainTagPrefix { get; set; }

    /// <summary>Host files for the snapshot's volumes, as <c>HOST:GUEST[:ro]</c>; a pack never chooses them.</summary>
    [Parameter]
    [ValidateNotNull]
    public string[] Volume { get; set; } = [];

    /// <summary>Largest total a pack may declare, in bytes (64 GiB by default).</summary>
    [Parameter]
    [ValidateRange(1, long.MaxValue)]
    public long MaxSize { get; set; } = ImportOptions.DefaultMaxSize;

    /// <summary>Seconds a download may stall (connect, headers, or under 1 KiB moving) before HubTimeout.</summary>
    [Parameter(ParameterSetName = UriSet)]
    [ValidateRange(1, 86400)]
    public double TimeoutSec { get; set; } = HubTimeouts.DefaultIdle.TotalSeconds;

    protected override void ProcessInput()
    {
        if (Tag is not null && !CheckTag(Tag))
        {
            return;
        }

        // The host files for -Volume belong to no pack: a missing one is one error, its path the target.
        IReadOnlyList<VolumeSpec> volumes;
        try
        {
            volumes = Volumes.Validate([.. Volume.Select(v =>
            {
                var parsed = Volumes.Parse(v);
                return parsed with { HostPath = GetUnresolvedProviderPathFromPSPath(parsed.HostPath) };
            })]);
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex);
            return;
        }

        if (ParameterSetName == UriSet)
        {
            ImportOne(Uri, null, volumes);
            return;
        }

        foreach (var file in PackPaths.Resolve(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet))
        {
            ImportOne(file, file, volumes);
        }
    }

    /// <summary>One pack: a failure is an error for that pack only (its path or URL as the target), the rest go on.</summary>
    private void ImportOne(string source, string? file, IReadOnlyList<VolumeSpec> volumes)
    {
        try
        {
            var installer = Engine.Packs;
            var options = new ImportOptions { Tag = Tag, Force = Force, Volumes = volumes, MaxSize = MaxSize, ChainTagPrefix = ChainTagPrefix };
            var target = $"{(Tag is null ? "tag from the pack's manifest" : $"tag '{Tag}'")}";
            var action = Force ? "Import pack, replacing an existing snapshot" : "Import pack";
            SnapshotInfo snapshot;
            if (file is null)
            {
                var url = HubClient.ResolvePullTarget(Uri, Hub, Environment.GetEnvironmentVariable);
                if (!ShouldProcess($"{HubClient.Redact(url)} -> {target}", action))
                {
                    return;
                }

                var timeouts = MyInvocation.BoundParameters.ContainsKey(nameof(TimeoutSec)) ? HubTimeouts.FromSeconds(TimeoutSec) : new HubTimeouts();
                using var client = new HubClient(timeouts);
                snapshot = RunEngine(call => client.PullAsync(installer, url, options, call.PackProgress(2), call.CancellationToken));
            }
            else
            {
                if (!ShouldProcess($"{file} -> {target}", action))
                {
                    return;
                }

                snapshot = RunEngine(call => installer.ImportFileAsync(file, options, call.PackProgress(2), call.CancellationToken));
            }

            foreach (var volume in snapshot.Metadata.Volumes)
            {
                if (string.IsNullOrEmpty(volume.HostPath))
                {
                    WriteWarning($"snapshot '{snapshot.Tag}' mounts a volume at {volume.GuestPath} that is not bound on this host; forks fail with VolumeUnbound until you import it again with -Force -Volume <host-file>:{volume.GuestPath}");
                }
                else if (!File.Exists(volume.HostPath) && !Directory.Exists(volume.HostPath))
                {
                    WriteWarning($"snapshot '{snapshot.Tag}' mounts {volume.HostPath} at {volume.GuestPath}, which does not exist on this host; children need it there");
                }
            }

            WriteObject(snapshot);
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex, file ?? ex.Target ?? source);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Disk full, permissions: the engine has removed its partial output already.
            WriteError("PackIOFailed", ErrorCategory.WriteError, ex.Message, source, inner: ex);
        }
    }
}
