using System.Collections;
using System.Management.Automation;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>
/// Binds anything that names a child to a child-id parameter: a string as it is, a <see cref="ForkdChild"/> by its
/// Id, and any other object (eval/exec/agent results, sandbox results, deserialized or custom objects) by its
/// ChildId or Id property. Never by ToString: a record's ToString is its whole content.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class ChildIdTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData) =>
        NameTransform.Apply(inputData, "ChildId", "Id");
}

/// <summary>Binds anything that names a snapshot to a -Tag parameter: a string as it is, any object by its Tag property.</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SnapshotTagTransformationAttribute : ArgumentTransformationAttribute
{
    public override object Transform(EngineIntrinsics engineIntrinsics, object inputData) =>
        NameTransform.Apply(inputData, "Tag");
}

internal static class NameTransform
{
    /// <summary>Maps one value or each element of an array to the first of <paramref name="properties"/> it has.</summary>
    public static object Apply(object? input, params string[] properties)
    {
        var value = input is PSObject pso ? pso.BaseObject : input;
        if (value is null or string)
        {
            return input!;
        }

        if (value is IList list and not IDictionary)
        {
            var names = new object?[list.Count];
            for (var i = 0; i < list.Count; i++)
            {
                names[i] = NameOf(list[i], properties);
            }

            return names;
        }

        return NameOf(input, properties) ?? input!;
    }

    private static object? NameOf(object? item, string[] properties)
    {
        if (item is null)
        {
            return null;
        }

        var pso = PSObject.AsPSObject(item);
        if (pso.BaseObject is string s)
        {
            return s;
        }

        if (pso.BaseObject is IDictionary dictionary)
        {
            foreach (var name in properties)
            {
                if (dictionary.Contains(name) && dictionary[name] is { } v)
                {
                    return v.ToString();
                }
            }

            return item;
        }

        foreach (var name in properties)
        {
            if (pso.Properties[name]?.Value is { } v)
            {
                return v is PSObject inner ? inner.BaseObject.ToString() : v.ToString();
            }
        }

        // Not an object that names anything: leave it for PowerShell's own conversion (and its error).
        return item;
    }
}

/// <summary>Finds the children that -Id names: exact ids and wildcard patterns (<c>py-*</c>).</summary>
internal static class ChildLookup
{
    /// <summary>
    /// The children for <paramref name="ids"/>, each once, in the order given. An exact id that does not exist is a
    /// non-terminating ChildNotFound; a pattern that matches nothing is silent, as with Get-Process -Name.
    /// Ids are exact and case-sensitive; patterns match ignoring case, like PowerShell's wildcards.
    /// </summary>
    public static List<ForkdChild> Resolve(ChildRegistry registry, IEnumerable<string> ids, Action<ErrorRecord> writeError)
    {
        var found = new List<ForkdChild>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        IReadOnlyList<ForkdChild>? all = null;
        foreach (var id in ids)
        {
            if (WildcardPattern.ContainsWildcardCharacters(id))
            {
                all ??= registry.List();
                var pattern = new WildcardPattern(id, WildcardOptions.IgnoreCase);
                found.AddRange(all.Where(c => pattern.IsMatch(c.Id) && seen.Add(c.Id)));
                continue;
            }

            var child = registry.Get(id);
            if (child is null)
            {
                writeError(NotFound(id));
            }
            else if (seen.Add(child.Id))
            {
                found.Add(child);
            }
        }

        return found;
    }

    public static ErrorRecord NotFound(string id) =>
        ForkdCmdlet.ToErrorRecord(new Forkd.Core.ForkdException("ChildNotFound", Forkd.Core.ForkdErrorKind.NotFound, $"no child with id '{id}'", id)
        {
            Hint = "Get-ForkdChild lists the known children; ids are case-sensitive, patterns such as 'py-*' are not.",
        });
}
