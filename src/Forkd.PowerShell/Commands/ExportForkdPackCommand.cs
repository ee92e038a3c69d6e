using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Hub;
using Forkd.Core.Text;

namespace Forkd.PowerShell.Commands;

/// <summary>Writes a snapshot as a forkd pack (<c>.forkd-snapshot.tar.zst</c>), forkd's <c>pack</c>.</summary>
[Cmdlet(VerbsData.Export, "ForkdPack", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, HelpUri = HelpLinks.Base + "Export-ForkdPack.md")]
[OutputType(typeof(PackInfo))]
public sealed class ExportForkdPackCommand : ForkdJobCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SnapshotTagTransformation]
    [ArgumentCompleter(typeof(SnapshotTagCompleter))]
    public string Tag { get; set; } = "";

    /// <summary>The pack file, or a directory for <c>&lt;tag&gt;.forkd-snapshot.tar.zst</c> in it; the current directory by default.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    [Parameter]
    public string? Description { get; set; }

    [Parameter]
    public string? BaseImage { get; set; }

    [Parameter]
    [ValidateRange(1, 19)]
    public int CompressionLevel { get; set; } = 3;

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessInput()
    {
        if (!CheckTag(Tag))
        {
            return;
        }

        var destination = ResolveDestination();
        var exists = File.Exists(destination);
        if (exists && !Force)
        {
            WriteForkdError(new ForkdException("PackOutputExists", ForkdErrorKind.AlreadyExists, $"{destination} already exists", destination)
            {
                Hint = "Pass -Force to overwrite it, or choose another -Path.",
            });
            return;
        }

        if (!ShouldProcess(destination, exists ? $"Overwrite with a pack of snapshot '{Tag}'" : $"Export snapshot '{Tag}' as a pack"))
        {
            return;
        }

        try
        {
            var options = new PackOptions { Description = Description, BaseImage = BaseImage, CompressionLevel = CompressionLevel, Overwrite = Force };
            var info = RunEngine(call => Engine.PackWriter.ExportAsync(Tag, destination, options, call.PackProgress(1), call.CancellationToken));
            WriteVerbose($"wrote {ByteSize.Format(info.PackedBytes)} ({ByteSize.Format(info.UnpackedBytes)} uncompressed; {info.Ratio:F1}x) in {info.Duration.TotalSeconds:F1}s");
            WriteObject(info);
        }
        catch (ForkdException ex)
        {
            // An error about a file keeps that file as its target; the others name the tag.
            WriteForkdError(ex, ex.Target ?? Tag);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Disk full, permissions: the engine has removed its partial output already.
            WriteError("PackIOFailed", ErrorCategory.WriteError, ex.Message, destination, inner: ex);
        }
    }

    private string ResolveDestination()
    {
        var fileName = PackFormat.DefaultFileName(Tag);
        if (Path is null)
        {
            return System.IO.Path.Combine(SessionState.Path.CurrentFileSystemLocation.ProviderPath, fileName);
        }

        var resolved = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        return Directory.Exists(resolved) ? System.IO.Path.Combine(resolved, fileName) : resolved;
    }
}
