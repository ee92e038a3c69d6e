using Forkd.Core.Store;
using System.Management.Automation;
using Forkd.Core;
using Forkd.Core.Engine;

namespace Forkd.PowerShell;

/// <summary>
/// Shared by the cmdlets that talk to children's agents: children are collected from the pipeline
/// (or -Id) in ProcessRecord, then called in parallel in EndProcessing, at most -ThrottleLimit at once.
/// Results are written from the pipeline thread as they complete; a dead child or a timeout is a
/// non-terminating error for that child only.
/// </summary>
public abstract class AgentCmdletBase<TResult> : ForkdCmdlet
{
    private readonly List<string> _ids = [];

    [Parameter(Mandatory = true, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ChildId")]
    [ChildIdTransformation]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ChildIdCompleter))]
    public string[] Id { get; set; } = [];

    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = 16;

    /// <summary>The longest agent reply accepted, in bytes (default 16 MiB); a longer one is AgentReplyTooLarge and the connection is dropped.</summary>
    [Parameter]
    [ValidateRange(1024L, 1L << 30)]
    public long MaxReplyBytes { get; set; } = Forkd.Core.Guest.AgentClient.DefaultMaxReplyBytes;

    /// <summary>Talk over the child's own network (TCP 10.42.0.2:8888 inside its namespace) instead of the VMM's channel.</summary>
    [Parameter]
    public SwitchParameter ViaNetwork { get; set; }

    protected override void ProcessRecord() => _ids.AddRange(Id);

    /// <summary>What the call does to a child, for -WhatIf/-Confirm; null for read-only calls (ping).</summary>
    protected virtual string? ShouldProcessAction => null;

    /// <summary>A guest-side failure in a result as an error record (see <see cref="GuestFailure"/>), or null.</summary>
    protected virtual ErrorRecord? GuestErrorFor(TResult result) => null;

    private void WriteResult(TResult result)
    {
        WriteObject(result);
        if (GuestErrorFor(result) is { } error)
        {
            WriteError(error);
        }
    }

    /// <summary>One call to one child.</summary>
    protected abstract Task<TResult> CallAsync(ChildRegistry registry, ForkdChild child, CancellationToken cancellationToken);

    protected override void EndProcessing()
    {
        var registry = Engine.Children;
        var children = new List<ForkdChild>();
        foreach (var child in ChildLookup.Resolve(registry, _ids, WriteError))
        {
            if (ViaNetwork && child.NetworkAgent is null)
            {
                WriteError("ChildHasNoNetwork", ErrorCategory.InvalidArgument, $"child '{child.Id}' was not forked with -Network", child.Id,
                    "Invoke-ForkdFork -Network gives children a network (after Initialize-ForkdNetwork).");
            }
            else if (ShouldProcessAction is null || ShouldProcess(child.Id, ShouldProcessAction))
            {
                children.Add(ViaNetwork ? child with { Agent = child.NetworkAgent! } : child);
            }
        }

        if (children.Count == 0)
        {
            return;
        }

        // Ctrl+C cancels outstanding calls; the children keep running.
        RunEngine(async call =>
        {
            using var throttle = new SemaphoreSlim(ThrottleLimit);
            async Task One(ForkdChild child)
            {
                await throttle.WaitAsync(call.CancellationToken).ConfigureAwait(false);
                try
                {
                    var result = await CallAsync(registry, child, call.CancellationToken).ConfigureAwait(false);
                    call.Post(() => WriteResult(result));
                }
                catch (ForkdException ex)
                {
                    call.Post(() => WriteForkdError(ex, child.Id));
                }
                finally
                {
                    throttle.Release();
                }
            }

            await Task.WhenAll(children.Select(One)).ConfigureAwait(false);
        });
    }
}
