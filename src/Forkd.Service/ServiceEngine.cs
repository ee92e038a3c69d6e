using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Forkd.Core.Vmm.Qemu;

namespace Forkd.Service;

/// <summary>
/// The ONE place the service touches the engine (store, child registry, fork, stop, agent calls), so that
/// moving to the composition root <c>Forkd.Core.Engine.ForkdEngine</c> is a change to this file only.
/// REST routes and MCP tools share it, and it shares the store and registry with the cmdlets: a child forked
/// here shows in Get-ForkdChild and a cmdlet-forked child can be driven from here.
/// </summary>
public sealed class ServiceEngine
{
    public ServiceEngine(ForkdPaths paths)
    {
        Paths = paths ?? throw new ArgumentNullException(nameof(paths));
        Registry = new ChildRegistry(paths);
    }

    public ForkdPaths Paths { get; }

    public ChildRegistry Registry { get; }

    private SnapshotStore Store => new(Paths) { RunningChildrenOf = Registry.RunningChildrenOf };

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
        var outcomes = await CreateForker(TagRule.Validate(request.Tag)).ForkAsync(request, null, cancellationToken).ConfigureAwait(false);
        var failed = outcomes.FirstOrDefault(o => o.Error is not null);
        var children = outcomes.Where(o => o.Child is not null).Select(o => o.Child!).ToList();
        if (failed is null)
        {
            return children;
        }

        await Task.WhenAll(children.Select(c => ChildStopper.StopAsync(Registry, c))).ConfigureAwait(false);
        throw failed.Error!;
    }

    public async Task StopChildAsync(string id) => await ChildStopper.StopAsync(Registry, GetChild(id)).ConfigureAwait(false);

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

    // Same rule as the cmdlets: children use the backend their snapshot records (forkd's own are Firecracker's).
    private Forker CreateForker(string tag)
    {
        var kind = BackendKind.Qemu;
        try
        {
            var recorded = Store.Get(tag).Metadata.Backend ?? nameof(BackendKind.Firecracker);
            kind = Enum.TryParse<BackendKind>(recorded, ignoreCase: true, out var k) ? k : BackendKind.Qemu;
        }
        catch (ForkdException)
        {
            // the forker reports a missing or broken snapshot itself
        }

        IVmmBackend backend = kind == BackendKind.Firecracker ? new FirecrackerBackend() : new QemuBackend { TscKiloHertz = HostTsc.KiloHertz() ?? 0 };
        return new Forker(Paths, backend, Registry, new Cgroups());
    }
}
