using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>Wires engine parts that must not reference each other (the store and the child registry).</summary>
internal static class EngineHooks
{
    /// <summary>Running children of a tag; empty until the child registry exists.</summary>
    public static Func<string, IReadOnlyList<string>> RunningChildrenOf(ForkdPaths paths)
    {
        _ = paths;
        return _ => [];
    }
}
