using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Guest;
using Forkd.Core.Text;

namespace Forkd.PowerShell.Commands;

/// <summary>Deletes guest images from the image cache.</summary>
[Cmdlet(VerbsCommon.Remove, "ForkdImage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "ByRecipe")]
[OutputType(typeof(GuestImage))]
public sealed class RemoveForkdImageCommand : ForkdCmdlet
{
    /// <summary>Recipe names or wildcard patterns.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = "ByRecipe")]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RecipeCompleter))]
    public string[] Recipe { get; set; } = [];

    /// <summary>Only the image with this content hash (or hash prefix).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, ParameterSetName = "ByRecipe")]
    [ValidateNotNullOrEmpty]
    public string? ContentHash { get; set; }

    /// <summary>Every image that its recipe would no longer build (older packages or guest files).</summary>
    [Parameter(Mandatory = true, ParameterSetName = "Stale")]
    public SwitchParameter Stale { get; set; }

    /// <summary>Write each removed image to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private GuestImageBuilder? _builder;

    protected override void ProcessRecord()
    {
        try
        {
            _builder ??= Engine.Images;
            foreach (var image in Select(_builder))
            {
                if (!ShouldProcess($"{image.Recipe} {image.ContentHash[..16]} ({ByteSize.Format(image.KernelBytes + image.InitramfsBytes)}) at {image.Directory}",
                    "Remove guest image"))
                {
                    continue;
                }

                try
                {
                    _builder.Remove(image);
                    if (PassThru)
                    {
                        WriteObject(image);
                    }
                }
                catch (ForkdException ex)
                {
                    WriteForkdError(ex, image.Directory);
                }
                catch (IOException ex)
                {
                    WriteError("ImageRemoveFailed", ErrorCategory.WriteError, $"could not remove {image.Directory}: {ex.Message}", image.Directory, inner: ex);
                }
            }
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
        }
    }

    private List<GuestImage> Select(GuestImageBuilder builder)
    {
        var cached = builder.ListCached();
        if (Stale)
        {
            var stale = new List<GuestImage>();
            foreach (var group in cached.GroupBy(i => i.Recipe, StringComparer.Ordinal))
            {
                string? current = null;
                if (builder.RecipeNames.Contains(group.Key))
                {
                    current = RunEngine(call => builder.FindCachedAsync(group.Key, call.CancellationToken))?.ContentHash
                        ?? "(not built)";
                }

                // An image of a recipe that no longer exists is stale too.
                stale.AddRange(group.Where(i => i.ContentHash != current));
            }

            return stale;
        }

        var selected = new List<GuestImage>();
        foreach (var pattern in Recipe)
        {
            var wildcard = new WildcardPattern(pattern, WildcardOptions.IgnoreCase);
            var matches = cached.Where(i => wildcard.IsMatch(i.Recipe)
                && (ContentHash is null || i.ContentHash.StartsWith(ContentHash, StringComparison.OrdinalIgnoreCase))).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(pattern))
            {
                WriteError("ImageNotFound", ErrorCategory.ObjectNotFound,
                    ContentHash is null ? $"no cached image of recipe '{pattern}'" : $"no cached image of recipe '{pattern}' with hash {ContentHash}", pattern);
            }

            selected.AddRange(matches);
        }

        return selected;
    }
}
