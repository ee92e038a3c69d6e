using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Guest;
using Forkd.Core.Store;

namespace Forkd.Service;

/// <summary>
/// The ONE place the service touches the engine, through the composition root <see cref="ForkdEngine"/> (store,
/// child registry, backend catalogue, fork, stop) plus the agent calls.
/// REST routes and MCP tools share it, and it shares the store and registry with the cmdlets: a child forked
/// here shows in Get-ForkdChild and a cmdlet-forked child can be driven from here.
/// </summary>
public sealed class ServiceEngine
{
    public ServiceEngine(ForkdPaths paths)
        : this(new ForkdEngine(paths ?? throw new ArgumentNullException(nameof(paths))))
    {
    }

    public ServiceEngine(ForkdEngine engine) => Engine = engine ?? throw new ArgumentNullException(nameof(engine));

    public ForkdEngine Engine { get; }

    public ForkdPaths Paths => Engine.Paths;

    public ChildRegistry Registry => Engine.Children;

    private SnapshotStore Store => Engine.Store;

    public IReadOnlyList<SnapshotInfo> ListSnapshots() => Store.List();

    public SnapshotInfo GetSnapshot(string tag) => Store.Get(TagRule.Validate(tag));

    public void RemoveSnapshot(string tag) => Store.Remove(TagRule.Validate(tag));

    public IReadOnlyList<ForkdChild> ListChildren() => Registry.List();

    public int RunningChildCount() => Registry.List().Count(c => c.State == ChildState.Running);

    /// <summary>The child, or a NotFound <see cref="ForkdException"/>; the id is validated first (400, not a path).</summary>
    public ForkdChild GetChild(string id)
    {
        if (!ChildRegistry.IsValidId(id))
        {
            throw new ForkdException("InvalidChildId", ForkdErrorKind.InvalidArgument,
                "sandbox id must be 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter, digit or '_'", id);
        }

        return Registry.Get(id) ?? throw new ForkdException("ChildNotFound", ForkdErrorKind.NotFound, $"sandbox {id} not found", id)
        { Hint = "GET /v1/sandboxes lists the sandboxes (the same registry as Get-ForkdChild)." };
    }

    /// <summary>Forks <paramref name="request"/>.Count children; all or nothing: when one fails the others are stopped.</summary>
    public async Task<IReadOnlyList<ForkdChild>> ForkAsync(ForkRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        TagRule.Validate(request.Tag);
        var outcomes = await Engine.ForkAsync(request, null, cancellationToken).ConfigureAwait(false);
        var failed = outcomes.FirstOrDefault(o => o.Error is not null);
        var children = outcomes.Where(o => o.Child is not null).Select(o => o.Child!).ToList();
        if (failed is null)
        {
            return children;
        }

        await Task.WhenAll(children.Select(Engine.StopChildAsync)).ConfigureAwait(false);
        throw failed.Error!;
    }

    public async Task StopChildAsync(string id) => await Engine.StopChildAsync(GetChild(id)).ConfigureAwait(false);

    // The agent calls take the child already looked up (one registry read per request).
    public Task<ForkdEvalResult> EvalAsync(ForkdChild child, string code, TimeSpan timeout, CancellationToken cancellationToken) =>
        AgentCalls.EvalAsync(Registry, child, code, timeout, cancellationToken);

    public Task<ForkdExecResult> ExecAsync(ForkdChild child, IReadOnlyList<string> argv, TimeSpan timeout, CancellationToken cancellationToken) =>
        AgentCalls.ExecAsync(Registry, child, argv, timeout, cancellationToken);

    /// <summary>The agent's ping reply object unchanged (forkd's REST ping returns it verbatim).</summary>
    public async Task<JsonObject> PingAsync(ForkdChild child, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(child);
        var id = child.Id;
        // Only while the pid is provably still this child's VMM (the same check as Test-ForkdAgent).
        if (!Registry.IsOurProcess(child.ProcessId, child.WorkDirectory))
        {
            throw new ForkdException("ChildExited", ForkdErrorKind.NotFound, $"sandbox {id} is not running (its VMM process {child.ProcessId} is gone)", id)
            { Hint = $"DELETE /v1/sandboxes/{id} removes what is left of it." };
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            var agent = await AgentWait.ConnectAsync(child.Agent, AgentCalls.ConnectTimeout, deadline.Token).ConfigureAwait(false);
            await using (agent.ConfigureAwait(false))
            {
                var reply = await agent.SendAsync(new JsonObject { ["action"] = "ping" }, timeout, deadline.Token).ConfigureAwait(false);
                reply.Remove("id"); // the request id our client added, not the agent's
                return reply;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ForkdException("AgentTimeout", ForkdErrorKind.Timeout, $"sandbox {id} did not answer within {timeout.TotalSeconds:0.#} s", id);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            throw new ForkdException("AgentUnreachable", ForkdErrorKind.ConnectionFailed, $"cannot talk to the agent of sandbox {id}: {ex.Message}", id, ex);
        }
    }
}
