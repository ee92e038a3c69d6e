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
    [ValidateNotNullOrEmpty]
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

    /// <summary>One call to one child.</summary>
    protected abstract Task<TResult> CallAsync(ChildRegistry registry, ForkdChild child, CancellationToken cancellationToken);

    protected override void EndProcessing()
    {
        var registry = new ChildRegistry(Paths);
        var children = new List<ForkdChild>();
        foreach (var id in _ids.Distinct(StringComparer.Ordinal))
        {
            var child = registry.Get(id);
            if (child is null)
            {
                WriteError("ChildNotFound", ErrorCategory.ObjectNotFound, $"no child with id '{id}'", id, "Get-ForkdChild lists the known children.");
            }
            else if (ViaNetwork && child.NetworkAgent is null)
            {
                WriteError("ChildHasNoNetwork", ErrorCategory.InvalidArgument, $"child '{id}' was not forked with -Network", id,
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

        using var pump = new PipelinePump();
        using var throttle = new SemaphoreSlim(ThrottleLimit);
        async Task One(ForkdChild child)
        {
            await throttle.WaitAsync(StopToken).ConfigureAwait(false);
            try
            {
                var result = await CallAsync(registry, child, StopToken).ConfigureAwait(false);
                pump.Post(() => WriteObject(result));
            }
            catch (ForkdException ex)
            {
                pump.Post(() => WriteForkdError(ex, child.Id));
            }
            finally
            {
                throttle.Release();
            }
        }

        try
        {
            pump.Run(Task.Run(() => Task.WhenAll(children.Select(One)), StopToken));
        }
        catch (OperationCanceledException)
        {
            // Ctrl+C: outstanding calls were cancelled; the children keep running.
        }
    }
}
