using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Forkd.Core.Store;

namespace Forkd.Core.Engine;

/// <summary>What a one-shot sandbox run produced (forkd's <c>run</c>).</summary>
public sealed record SandboxResult
{
    public required string Recipe { get; init; }

    /// <summary>The snapshot made for the run (gone afterwards unless kept).</summary>
    public required string Tag { get; init; }

    public required string ChildId { get; init; }

    public required IReadOnlyList<string> Command { get; init; }

    public int ExitCode { get; init; }

    public string Stdout { get; init; } = "";

    public string Stderr { get; init; } = "";

    /// <summary>The agent's own failure (command not found, timeout), else null.</summary>
    public string? Error { get; init; }

    public TimeSpan SnapshotTime { get; init; }

    public TimeSpan ForkTime { get; init; }

    public TimeSpan CommandTime { get; init; }

    /// <summary>True when the snapshot and the child were left in place (<c>-Keep</c>).</summary>
    public bool Kept { get; init; }

    public bool Succeeded => Error is null && ExitCode == 0;
}

/// <summary>
/// One-shot sandbox: snapshot the recipe's parent, fork one child, run one command, then remove the
/// child and the snapshot (unless kept). Unlike forkd's <c>run</c>, each run has its own tag, so two
/// runs never overwrite each other's snapshot, and nothing is left behind on success, failure or Ctrl+C.
/// </summary>
public sealed class SandboxRunner
{
    private readonly SnapshotStore _store;
    private readonly SnapshotBuilder _snapshots;
    private readonly Forker _forker;
    private readonly ChildRegistry _registry;

    public SandboxRunner(SnapshotStore store, SnapshotBuilder snapshots, Forker forker)
    {
        _store = store;
        _snapshots = snapshots;
        _forker = forker;
        _registry = store.Children;
    }

    /// <summary>A fresh tag for one run: <c>run-&lt;recipe&gt;-&lt;8 hex&gt;</c>.</summary>
    public static string NewTag(string recipe)
    {
        ArgumentNullException.ThrowIfNull(recipe);
        var slug = new string([.. recipe.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-')]).Trim('-');
        if (slug.Length > 40)
        {
            slug = slug[..40].TrimEnd('-');
        }

        return string.Create(CultureInfo.InvariantCulture, $"run-{(slug.Length == 0 ? "x" : slug)}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");
    }

    public async Task<SandboxResult> RunAsync(SnapshotRequest snapshot, IReadOnlyList<string> command, TimeSpan commandTimeout, bool keep,
        IProgress<SnapshotProgress>? progress, Action<string>? log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(command);
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
        {
            throw new ForkdException("NoCommand", ForkdErrorKind.InvalidArgument, "no command provided; give the program and its arguments", null);
        }

        var tag = snapshot.Tag;
        ForkdChild? child = null;
        var snapshotMade = false;
        try
        {
            var clock = Stopwatch.StartNew();
            await _snapshots.CreateAsync(snapshot, progress, log, cancellationToken).ConfigureAwait(false);
            snapshotMade = true;
            var snapshotTime = clock.Elapsed;

            progress?.Report(new("forking the sandbox", 96));
            clock.Restart();
            var outcome = (await _forker.ForkAsync(new ForkRequest { Tag = tag, Count = 1 }, null, cancellationToken).ConfigureAwait(false)).Single();
            child = outcome.Child ?? throw outcome.Error!;
            var forkTime = clock.Elapsed;
            log?.Invoke($"sandbox child {child.Id} ready in {forkTime.TotalMilliseconds:0} ms");

            progress?.Report(new("running the command", 98));
            clock.Restart();
            var exec = await AgentCalls.ExecAsync(_registry, child, command, commandTimeout, cancellationToken).ConfigureAwait(false);
            return new SandboxResult
            {
                Recipe = snapshot.Recipe,
                Tag = tag,
                ChildId = child.Id,
                Command = command,
                ExitCode = exec.ExitCode,
                Stdout = exec.Stdout,
                Stderr = exec.Stderr,
                Error = exec.Error,
                SnapshotTime = snapshotTime,
                ForkTime = forkTime,
                CommandTime = clock.Elapsed,
                Kept = keep,
            };
        }
        finally
        {
            // Kept only when asked for and when the run got that far; a failed run never leaves anything.
            var success = !cancellationToken.IsCancellationRequested;
            if (!(keep && success))
            {
                if (child is not null)
                {
                    await ChildStopper.StopAsync(_registry, child).ConfigureAwait(false);
                }

                if (snapshotMade)
                {
                    RemoveSnapshot(tag);
                }
            }
        }
    }

    private void RemoveSnapshot(string tag)
    {
        try
        {
            _store.Remove(tag);
        }
        catch (ForkdException ex) when (ex.ErrorId == "SnapshotNotFound")
        {
            // already gone
        }
    }
}
