using System.Diagnostics;
using Forkd.Core.Guest;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Core.Engine;

public sealed record ForkRequest
{
    public required string Tag { get; init; }

    public int Count { get; init; } = 1;

    /// <summary>Per-child memory ceiling through cgroups, or null for none.</summary>
    public long? MemoryLimitMiB { get; init; }

    /// <summary>Raised so the kernel's OOM killer picks a runaway child before anything else.</summary>
    public int OomScoreAdj { get; init; } = 800;

    public TimeSpan AgentTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Fork even when several children would write one read-write volume (warned, not refused).</summary>
    public bool AllowSharedWritableVolumes { get; init; }

    /// <summary>Receives warnings (a forced shared writable volume).</summary>
    public Action<string>? OnWarning { get; init; }

    /// <summary>Start each child in its own network namespace (Initialize-ForkdNetwork makes them).</summary>
    public bool Network { get; init; }

    /// <summary>
    /// Children starting at the same time; the rest wait their turn. A start is mostly CPU work (VMM start, the
    /// guest's first steps) with short waits between (the launcher's exit, QMP and agent round trips): a few
    /// starts per core fill those waits, far more only make each start slower and risk agent timeouts.
    /// </summary>
    public int MaxParallelStarts { get; init; } = DefaultParallelStarts;

    /// <summary>Eight per core (measured on 2 cores, 16 and 100 children: 2 per core 844/-, 4 per core 729/4305, 8 per core 639/4059, 16 per core 637/4398 ms).</summary>
    public static int DefaultParallelStarts => Math.Clamp(Environment.ProcessorCount * 8, 4, 256);
}

public sealed record ForkProgress(int Ready, int Failed, int Count);

/// <summary>One child's outcome: the child, or why it failed.</summary>
public sealed record ForkOutcome(int Index, ForkdChild? Child, ForkdException? Error);

/// <summary>
/// Starts n children of a snapshot in parallel. Each is registered as soon as its VMM has a pid, so
/// nothing can leak unrecorded; cancellation (Ctrl+C) stops every child this fork started.
/// </summary>
public sealed class Forker
{
    private readonly ForkdPaths _paths;
    private readonly SnapshotStore _store;
    private readonly BackendCatalog _backends;
    private readonly ChildRegistry _registry;
    private readonly Cgroups _cgroups;

    public Forker(SnapshotStore store, BackendCatalog backends, Cgroups cgroups)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _paths = store.Paths;
        _backends = backends ?? throw new ArgumentNullException(nameof(backends));
        _registry = store.Children;
        _cgroups = cgroups;
    }

    public async Task<IReadOnlyList<ForkOutcome>> ForkAsync(ForkRequest request, IProgress<ForkProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tag = TagRule.Validate(request.Tag);
        if (request.Count < 1)
        {
            throw new ForkdException("InvalidCount", ForkdErrorKind.InvalidArgument, $"count must be at least 1 (got {request.Count})", request.Count);
        }

        // Shared: forks of one tag run side by side; creating or removing the tag meanwhile is refused.
        using var tagLock = TagLock.AcquireShared(_paths, tag, "Invoke-ForkdFork");
        var snapshot = _store.Get(tag);
        // Children always run on the backend that made the snapshot; it completes what other tools' snapshots lack
        // (forkd's own record only vmstate, memory and volumes).
        var backend = _backends.ForSnapshot(snapshot.Metadata, tag);
        var metadata = backend.Adopt(snapshot.Path, snapshot.Metadata);
        if (!snapshot.IsComplete || metadata.BackendConfig is null)
        {
            throw new ForkdException("SnapshotIncomplete", ForkdErrorKind.InvalidData,
                $"snapshot '{tag}' has no vmstate, memory image or backend settings; it cannot be forked", tag);
        }

        SnapshotMetadataSafety.RequireVolumesBound(metadata, tag); // hub: imported volumes have no host side until bound
        backend.Capabilities.Require(backend.Kind, rootDisk: false, volumes: metadata.Volumes.Count > 0, network: request.Network);
        backend.EnsureAvailable();

        // The registry is read only for a snapshot with a writable volume: beside a hundred running children, reading
        // every record on each fork would make forking slower the more children there are.
        var runningWriters = metadata.Volumes.Any(v => !v.ReadOnly) ? _registry.RunningChildrenOf(tag).Count : 0;
        var sharedWrite = Volumes.CheckSharedWritable(tag, metadata.Volumes, request.Count, runningWriters,
            request.AllowSharedWritableVolumes);
        IReadOnlyList<DriveSpec> driveOverrides = [];
        if (sharedWrite is not null)
        {
            request.OnWarning?.Invoke(sharedWrite);
            driveOverrides = [.. Volumes.Drives(metadata.Volumes).Where(d => !d.ReadOnly).Select(d => d with { AllowSharedWrite = true })];
        }

        using var networkLock = request.Network ? await ChildNetworkAllocator.LockAsync(_paths, cancellationToken).ConfigureAwait(false) : null;
        var namespaces = request.Network ? ChildNetworkAllocator.Reserve(_registry, metadata.BackendConfig!, request.Count, tag) : null;
        var accelerator = VmmNames.ParseAccelerator(metadata.Accelerator) ?? Accelerator.Tcg;
        // A diff snapshot's chain is verified and its memory assembled once (SnapshotChains); others map their own memory.bin.
        var files = new VmSnapshotFiles(metadata.ResolveVmState(snapshot.Path), new SnapshotChains(_store).PrepareMemory(snapshot, cancellationToken));
        var started = new List<ForkdChild>();
        int ready = 0, failed = 0;

        using var turns = new SemaphoreSlim(Math.Max(1, request.MaxParallelStarts));

        async Task<ForkOutcome> StartOne(int index)
        {
            await turns.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var child = await StartChildAsync(backend, request, snapshot.Path, files, metadata.BackendConfig!, accelerator, driveOverrides, index,
                    namespaces?[index - 1], c =>
                {
                    lock (started)
                    {
                        started.Add(c);
                    }
                }, cancellationToken).ConfigureAwait(false);
                progress?.Report(new(Interlocked.Increment(ref ready), Volatile.Read(ref failed), request.Count));
                return new ForkOutcome(index, child, null);
            }
            catch (ForkdException ex) when (!cancellationToken.IsCancellationRequested)
            {
                progress?.Report(new(Volatile.Read(ref ready), Interlocked.Increment(ref failed), request.Count));
                return new ForkOutcome(index, null, ex);
            }
            finally
            {
                turns.Release();
            }
        }

        try
        {
            var outcomes = await Task.WhenAll(Enumerable.Range(1, request.Count).Select(StartOne)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return outcomes;
        }
        catch (Exception)
        {
            // Cancelled (or something unexpected): no child of this fork may outlive it.
            List<ForkdChild> toStop;
            lock (started)
            {
                toStop = [.. started];
            }

            await Task.WhenAll(toStop.Select(c => ChildStopper.StopAsync(_registry, c))).ConfigureAwait(false);
            throw;
        }
    }

    private async Task<ForkdChild> StartChildAsync(IVmmBackend backend, ForkRequest request, string snapshotDir, VmSnapshotFiles files,
        System.Text.Json.Nodes.JsonObject backendConfig, Accelerator accelerator, IReadOnlyList<DriveSpec> driveOverrides, int index,
        string? netns, Action<ForkdChild> onRegistered,
        CancellationToken cancellationToken)
    {
        var createdAt = DateTimeOffset.UtcNow;
        var id = ChildRegistry.NewId(request.Tag);
        var workDir = WorkDirectories.Create(_paths, WorkDirKind.Child, request.Tag);
        var clock = Stopwatch.StartNew();
        var startedAt = DateTimeOffset.UtcNow;
        IVmHandle vm;
        try
        {
            vm = await backend.RestoreAsync(new VmRestoreSpec
            {
                Name = id,
                WorkDirectory = workDir,
                Snapshot = files,
                BackendConfig = backendConfig,
                Accelerator = accelerator,
                DriveOverrides = driveOverrides,
                NetworkNamespace = netns,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            SafeDelete.Delete(workDir);
            throw;
        }

        var restoreTime = clock.Elapsed.TotalMilliseconds;
        var stages = vm.StartStages;
        var engineClock = Stopwatch.StartNew(); // the engine's own work from here on, apart from the agent wait
        var child = new ForkdChild
        {
            Id = id,
            Tag = request.Tag,
            Index = index,
            ProcessId = vm.ProcessId,
            Backend = backend.Kind,
            Accelerator = accelerator,
            Agent = vm.Agent,
            RestoreTime = restoreTime,
            WorkDirectory = workDir,
            SnapshotDirectory = snapshotDir,
            MemoryFile = files.MemoryPath,
            MemoryLimitMiB = request.MemoryLimitMiB,
            NetworkNamespace = netns,
            NetworkAgent = netns is null ? null : new AgentEndpoint(AgentTransport.Tcp, ChildNetworks.GuestAddress.ToString(), ChildNetworks.AgentPort, netns),
            StartedAt = startedAt,
        };
        _registry.Save(child);
        onRegistered(child);
        try
        {
            ProcessControl.SetOomScoreAdj(vm.ProcessId, request.OomScoreAdj);
            if (request.MemoryLimitMiB is { } limit)
            {
                child = child with { CgroupPath = _cgroups.Place(id, vm.ProcessId, limit * 1024 * 1024) };
                _registry.Save(child);
                onRegistered(child);
            }

            var pid = vm.ProcessId;
            engineClock.Stop();
            var agentClock = Stopwatch.StartNew();
            var agent = await AgentWait.UntilReadyAsync(vm.Agent, request.AgentTimeout, () => ProcessControl.IsAlive(pid), cancellationToken)
                .ConfigureAwait(false);
            var agentReady = agentClock.Elapsed;
            engineClock.Start();
            await agent.DisposeAsync().ConfigureAwait(false);
            var preWork = startedAt - createdAt;
            child = child with
            {
                ReadyTime = clock.Elapsed.TotalMilliseconds,
                AgentGeneration = agent.Generation,
                StartStages = stages with { AgentReady = agentReady, Engine = engineClock.Elapsed + preWork },
            };
            _registry.Save(child);
            vm.Detach();
            return child;
        }
        catch (Exception ex) when (ex is ForkdException or IOException or UnauthorizedAccessException)
        {
            vm.Detach();
            await ChildStopper.StopAsync(_registry, child).ConfigureAwait(false);
            throw ex as ForkdException ?? new ForkdException("ForkFailed", ForkdErrorKind.Failed, $"child {index} failed: {ex.Message}", id, ex);
        }
    }
}
