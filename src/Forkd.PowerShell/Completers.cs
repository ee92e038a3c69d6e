using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Language;
using Forkd.Core;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.PowerShell;

/// <summary>
/// Tab completion with live values, read when Tab is pressed (as pwsh does for Get-Process -Name): the data dir
/// is the one the session's environment names, so completion shows what the cmdlet would act on. A completer never
/// throws: a store it cannot read completes nothing.
/// </summary>
public abstract class LiveCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        IEnumerable<(string Value, string Tip)> candidates;
        try
        {
            candidates = Candidates().ToList();
        }
        catch (Exception ex) when (ex is ForkdException or IOException or UnauthorizedAccessException)
        {
            return [];
        }

        var word = (wordToComplete ?? "").Trim('\'', '"');
        var pattern = new WildcardPattern(word + "*", WildcardOptions.IgnoreCase);
        return [.. candidates
            .Where(c => pattern.IsMatch(c.Value))
            .Select(c => new CompletionResult(Quote(c.Value), c.Value, CompletionResultType.ParameterValue, c.Tip))];
    }

    /// <summary>Every value the parameter can take now, with a tooltip.</summary>
    protected abstract IEnumerable<(string Value, string Tip)> Candidates();

    private static string Quote(string value) =>
        value.Any(ch => char.IsWhiteSpace(ch) || "'\"$`;(){}@&#,|<>".Contains(ch)) ? $"'{value.Replace("'", "''", StringComparison.Ordinal)}'" : value;
}

/// <summary>Snapshot tags in the local store.</summary>
public sealed class SnapshotTagCompleter : LiveCompleter
{
    protected override IEnumerable<(string Value, string Tip)> Candidates() =>
        new SnapshotStore(ForkdPaths.FromEnvironment()).List()
            .Select(s => (s.Tag, $"{s.Tag} ({s.Recipe ?? s.Backend.ToString()}, {s.CreatedAt.UtcDateTime.ToString("u", CultureInfo.InvariantCulture)})"));
}

/// <summary>Ids of the children in the registry.</summary>
public sealed class ChildIdCompleter : LiveCompleter
{
    protected override IEnumerable<(string Value, string Tip)> Candidates() =>
        new SnapshotStore(ForkdPaths.FromEnvironment()).Children.List()
            .Select(c => (c.Id, $"{c.Id} ({c.Tag}, pid {c.ProcessId}, {c.State})")); // no Index: it is per fork call, not unique
}

/// <summary>Indexes of the child network namespaces that exist on this host (forkd-child-&lt;i&gt;).</summary>
public sealed class NetworkIndexCompleter : LiveCompleter
{
    protected override IEnumerable<(string Value, string Tip)> Candidates() =>
        ChildNetworks.ListNamespaces()
            .Where(ChildNetworks.IsOurNamespace)
            .Select(n => ChildNetworks.IndexOf(n))
            .Order()
            .Select(i => (i.ToString(CultureInfo.InvariantCulture), ChildNetworks.NamespaceName(i)));
}
