namespace Forkd.Core.Store;

/// <summary>Diff chains in the store: a diff snapshot needs its parent's memory image, so the parent stays while it has dependents.</summary>
public sealed partial class SnapshotStore
{
    /// <summary>
    /// Every snapshot that depends on <paramref name="tag"/> through a chain of diffs, deepest first (so removing them
    /// in this order never leaves a diff without its parent).
    /// </summary>
    public IReadOnlyList<string> Dependents(string tag)
    {
        var byParent = List().Where(s => s.Metadata.IsDiff).ToLookup(s => s.Metadata.ParentTag!, s => s.Tag, StringComparer.Ordinal);
        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal) { tag };

        void Visit(string parent)
        {
            foreach (var child in byParent[parent].Order(StringComparer.Ordinal))
            {
                if (seen.Add(child))
                {
                    Visit(child);
                    result.Add(child); // after its own dependents
                }
            }
        }

        Visit(tag);
        return result;
    }

    /// <summary>
    /// Refuses a removal or a replacement (<paramref name="action"/>) that would leave diff snapshots without the memory
    /// image they are diffs of: a replaced parent has another image, so every fork of a dependent would be refused.
    /// </summary>
    public void ThrowIfDependents(string tag, string action = "remove it")
    {
        var dependents = Dependents(tag);
        if (dependents.Count > 0)
        {
            var direct = List().Where(s => s.Metadata.IsDiff && s.Metadata.ParentTag == tag).Select(s => s.Tag).ToList();
            throw new ForkdException("SnapshotHasDependents", ForkdErrorKind.InUse,
                $"cannot {action}: snapshot '{tag}' is the parent of {dependents.Count} diff snapshot(s) ({string.Join(", ", dependents)}); they need its memory image",
                tag)
            {
                Hint = $"Make its dependents standalone first (Merge-ForkdSnapshot -Tag {string.Join(", ", direct)}), or Remove-ForkdSnapshot -Tag {tag} -Force to remove them with it.",
            };
        }
    }

    /// <summary>What a -Force replace of an existing <paramref name="tag"/> must pass first: no running children, no diff snapshots over it.</summary>
    public void ThrowIfNotReplaceable(string tag)
    {
        ThrowIfChildrenRun(tag, "replace it");
        ThrowIfDependents(tag, "replace it");
    }

    /// <summary>Removes <paramref name="tag"/> and every snapshot that depends on it (deepest first), each under its own tag lock.</summary>
    public IReadOnlyList<string> RemoveWithDependents(string tag)
    {
        var removed = new List<string>();
        foreach (var dependent in Dependents(tag))
        {
            Remove(dependent);
            removed.Add(dependent);
        }

        Remove(tag);
        removed.Add(tag);
        return removed;
    }
}
