using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>Turns a recipe name into the guest image a snapshot boots (built once, then cached).</summary>
internal static class RecipeImages
{
    // TODO(merge guest): build or reuse the image with GuestImageBuilder.
    public static SnapshotRequest Resolve(SnapshotRequest request, string recipe, ForkdPaths paths, PipelinePump pump, ForkdCmdlet cmdlet,
        CancellationToken cancellationToken)
    {
        _ = (paths, pump, cmdlet, cancellationToken, request);
        throw new ForkdException("RecipeNotFound", ForkdErrorKind.NotFound, $"recipe '{recipe}' is not available", recipe);
    }
}
