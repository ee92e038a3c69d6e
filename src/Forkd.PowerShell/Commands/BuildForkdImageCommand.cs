using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Guest;

namespace Forkd.PowerShell.Commands;

/// <summary>Builds (or finds in the cache) the guest image of a recipe: an ELF kernel plus an initramfs with Python and the agent.</summary>
// "Build" is an approved verb (Lifecycle) since PowerShell 6; PowerShellStandard 5.1 has no constant for it.
[Cmdlet("Build", "ForkdImage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, HelpUri = HelpLinks.Base + "Build-ForkdImage.md")]
[OutputType(typeof(GuestImage))]
public sealed class BuildForkdImageCommand : ForkdJobCmdlet
{
    /// <summary>Recipe names (folders under recipes/).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(RecipeCompleter))]
    public string[] Recipe { get; set; } = [];

    /// <summary>Rebuild even when the cache holds an image with the same content hash.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessInput()
    {
        GuestImageBuilder builder;
        try
        {
            builder = Engine.Images;
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
            return;
        }

        foreach (var name in Recipe)
        {
            try
            {
                // A cached image is returned without asking: nothing changes. Building writes to the cache.
                var cached = Force ? null : RunEngine(call => builder.FindCachedAsync(name, call.CancellationToken));
                if (cached is not null)
                {
                    WriteObject(cached);
                    continue;
                }

                if (!ShouldProcess($"{name} -> {builder.ImagesDirectory}", Force ? "Rebuild guest image" : "Build guest image"))
                {
                    continue;
                }

                var image = RunEngine(call => builder.BuildAsync(name, Force,
                    call.Progress<GuestBuildProgress>(1, $"Build-ForkdImage {name}", p => ($"{p.Activity}: {p.Status}", p.PercentComplete)),
                    call.CancellationToken));
                WriteObject(image);
            }
            catch (ForkdException ex)
            {
                WriteForkdError(ex, name);
            }
        }
    }
}

/// <summary>Completes recipe names from the recipes/ folder shipped with the module.</summary>
public sealed class RecipeCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
    {
        IReadOnlyList<string> names;
        try
        {
            names = GuestRecipe.ListNames(GuestSources.Locate().RecipesDirectory);
        }
        catch (ForkdException)
        {
            yield break;
        }

        foreach (var name in names.Where(n => n.StartsWith(wordToComplete ?? "", StringComparison.OrdinalIgnoreCase)))
        {
            yield return new CompletionResult(name);
        }
    }
}
