using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Hub;

namespace Forkd.PowerShell.Commands;

/// <summary>Packs a snapshot and uploads it to a presigned PUT URL (forkd's <c>push</c>).</summary>
[Cmdlet(VerbsData.Publish, "ForkdPack", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Publish-ForkdPack.md")]
[OutputType(typeof(PublishResult))]
public sealed class PublishForkdPackCommand : ForkdJobCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string Tag { get; set; } = "";

    /// <summary>The presigned PUT URL (S3, R2, GCS…).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Uri { get; set; } = "";

    [Parameter]
    public string? Description { get; set; }

    [Parameter]
    public string? BaseImage { get; set; }

    [Parameter]
    [ValidateRange(1, 19)]
    public int CompressionLevel { get; set; } = 3;

    /// <summary>Seconds the upload may stall (connect, or under 1 KiB moving, or no reply) before HubTimeout.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public double TimeoutSec { get; set; } = HubTimeouts.DefaultIdle.TotalSeconds;

    protected override void ProcessInput()
    {
        if (!CheckTag(Tag))
        {
            return;
        }

        if (!System.Uri.TryCreate(Uri, UriKind.Absolute, out var url) || (url.Scheme != System.Uri.UriSchemeHttp && url.Scheme != System.Uri.UriSchemeHttps))
        {
            WriteForkdError(new ForkdException("HubTargetInvalid", ForkdErrorKind.InvalidArgument,
                $"'{Uri}' is not an http(s) URL", Uri) { Hint = "Pass the presigned PUT URL your storage provider generated." });
            return;
        }

        if (!ShouldProcess(HubClient.Redact(url), $"Upload snapshot '{Tag}' as a pack"))
        {
            return;
        }

        try
        {
            using var client = new HubClient(MyInvocation.BoundParameters.ContainsKey(nameof(TimeoutSec)) ? HubTimeouts.FromSeconds(TimeoutSec) : new HubTimeouts());
            var options = new PackOptions { Description = Description, BaseImage = BaseImage, CompressionLevel = CompressionLevel };
            var result = RunEngine(call => client.PublishAsync(Paths, Tag, url, options, call.PackProgress(3), call.CancellationToken));
            WriteVerbose($"pushed {result.BytesSent} bytes in {result.UploadDuration.TotalSeconds:F1}s ({result.MiBPerSecond:F1} MiB/s)");
            WriteObject(result);
        }
        catch (ForkdException ex)
        {
            WriteForkdError(ex, Tag);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Disk full, permissions: the engine has removed its partial output already.
            WriteError("PackIOFailed", ErrorCategory.WriteError, ex.Message, Tag, inner: ex);
        }
    }
}
