using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Guest;

namespace Forkd.PowerShell.Commands;

/// <summary>Lists the guest images in the image cache.</summary>
[Cmdlet(VerbsCommon.Get, "ForkdImage")]
[OutputType(typeof(GuestImage))]
public sealed class GetForkdImageCommand : ForkdCmdlet
{
    /// <summary>Recipe names or wildcard patterns; every cached image when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RecipeCompleter))]
    public string[]? Recipe { get; set; }

    protected override void ProcessRecord()
    {
        IReadOnlyList<GuestImage> images;
        try
        {
            images = Engine.Images.ListCached();
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
            return;
        }

        if (Recipe is null)
        {
            WriteObject(images, enumerateCollection: true);
            return;
        }

        foreach (var pattern in Recipe)
        {
            var wildcard = new WildcardPattern(pattern, WildcardOptions.IgnoreCase);
            var matches = images.Where(i => wildcard.IsMatch(i.Recipe)).ToList();
            if (matches.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(pattern))
            {
                WriteError("ImageNotFound", ErrorCategory.ObjectNotFound, $"no cached image of recipe '{pattern}'", pattern,
                    $"Build it: Build-ForkdImage -Recipe {pattern}");
                continue;
            }

            WriteObject(matches, enumerateCollection: true);
        }
    }
}
