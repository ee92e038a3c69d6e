using System.Text.Json.Nodes;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Tests.Firecracker;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Engine;

/// <summary>
/// Checkpoint-ForkdChild, Suspend and Resume on the Firecracker backend, against the stand-in that checks every call
/// against the published API description: PATCH /vm Paused, PUT /snapshot/create with snapshot_type Full or Diff,
/// PATCH /vm Resumed; children restored with track_dirty_pages so a Diff is allowed; a Diff snapshot's memory is
/// assembled from its parent's image and Firecracker's sparse diff.
/// </summary>
public sealed class CheckpointFirecrackerFollowsPublishedApiTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "forkd-fccheckpoint-" + Guid.NewGuid().ToString("N")[..8]);
    private FakeFirecracker _fc = null!;
    private ForkdEngine _engine = null!;

    public async Task InitializeAsync()
    {
        var paths = new ForkdPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "tmp"));
        Directory.CreateDirectory(paths.TempDirectory);
        _fc = new FakeFirecracker(Path.Combine(_dir, "bin"));
        File.WriteAllText(Path.Combine(_dir, "vmlinux"), "kernel");
        var backend = new FirecrackerBackend(_fc.Binary);
        _engine = new ForkdEngine(paths, new BackendCatalog().Register(BackendKind.Firecracker, () => backend),
            new ChildRegistry(paths, isVmmExecutable: FakeFirecracker.IsItsExecutable));
        await _engine.CreateSnapshotAsync(new SnapshotRequest
        {
            Tag = "fc",
            Recipe = "custom",
            KernelPath = Path.Combine(_dir, "vmlinux"),
            AgentTimeout = TimeSpan.FromSeconds(10),
        }, BackendKind.Firecracker, null, null, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        foreach (var child in _engine.Children.List())
        {
            await _engine.StopChildAsync(child);
        }

        await _fc.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<ForkdChild> ForkOneAsync(string tag)
    {
        var outcome = (await _engine.ForkAsync(new ForkRequest { Tag = tag, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None)).Single();
        Assert.Null(outcome.Error);
        return outcome.Child!;
    }

    [Fact]
    public async Task Full_and_Diff_checkpoints_pause_create_and_resume_with_only_valid_calls()
    {
        var child = await ForkOneAsync("fc");
        var launch = _fc.Launches.Last();
        var load = launch.Server.Requests.Single(r => r.ToString() == "PUT /snapshot/load");
        Assert.True((bool)load.Body!["track_dirty_pages"]!); // dirty page tracking from the restore on

        var full = await _engine.Checkpoints.CheckpointAsync(new CheckpointRequest { ChildId = child.Id, Tag = "fc-full", Mode = SnapshotKinds.Full },
            null, CancellationToken.None);
        var diff = await _engine.Checkpoints.CheckpointAsync(new CheckpointRequest { ChildId = child.Id, Tag = "fc-diff", Mode = SnapshotKinds.Diff },
            null, CancellationToken.None);

        var calls = launch.Server.Requests.Select(r => r.ToString()).ToList();
        Assert.Equal(["PUT /snapshot/load", "GET /", "PATCH /vm", "PUT /snapshot/create", "PATCH /vm", "GET /", "PATCH /vm", "PUT /snapshot/create", "PATCH /vm"], calls);
        var creates = launch.Server.Requests.Where(r => r.OperationId == "createSnapshot").Select(r => (string?)r.Body!["snapshot_type"]).ToList();
        Assert.Equal(["Full", "Diff"], creates);
        var states = launch.Server.Requests.Where(r => r.OperationId == "patchVm").Select(r => (string?)r.Body!["state"]).ToList();
        Assert.Equal(["Paused", "Resumed", "Paused", "Resumed"], states);
        Assert.Equal("Running", launch.Server.StateName);
        Assert.Empty(_fc.AllViolations);

        Assert.Null(full.Snapshot.Metadata.ParentTag);
        Assert.Equal("fc", diff.Snapshot.Metadata.ParentTag);
        Assert.Equal(MemoryImageHash.Compute(Path.Combine(_engine.Paths.SnapshotDirectory("fc"), SnapshotFiles.Memory)), diff.Snapshot.Metadata.ParentContentHash);
        Assert.Equal(1, diff.CapturedPages); // only the dirty page of Firecracker's sparse diff

        // Forking the diff assembles parent image + diff: page 0 from the parent, page 1 the dirty 'D' page.
        var fromDiff = await ForkOneAsync("fc-diff");
        var assembled = File.ReadAllBytes(Path.Combine(_engine.Paths.SnapshotDirectory("fc-diff"), SnapshotFiles.Memory));
        Assert.Equal(2 * 4096, assembled.Length);
        Assert.All(assembled[..4096], b => Assert.Equal(0, b));
        Assert.All(assembled[4096..], b => Assert.Equal((byte)'D', b));
        Assert.Equal("fc-diff", fromDiff.Tag);
        Assert.Empty(_fc.AllViolations);
    }

    [Fact]
    public async Task Suspend_and_Resume_patch_the_vm_state_and_the_registry_shows_Paused()
    {
        var child = await ForkOneAsync("fc");
        var launch = _fc.Launches.Last();
        var paused = await _engine.Checkpoints.SuspendAsync(child.Id, CancellationToken.None);
        Assert.Equal(ChildState.Paused, paused.State);
        Assert.Equal(ChildState.Paused, _engine.Children.Get(child.Id)!.State);
        Assert.Equal("Paused", launch.Server.StateName);
        Assert.Contains(child.Id, _engine.Children.RunningChildrenOf("fc")); // a paused child still maps its snapshot

        // A checkpoint of a paused child leaves it paused: no PATCH /vm around the create.
        var before = launch.Server.Requests.Count;
        await _engine.Checkpoints.CheckpointAsync(new CheckpointRequest { ChildId = child.Id, Tag = "fc-paused" }, null, CancellationToken.None);
        Assert.Equal(["GET /", "PUT /snapshot/create"], launch.Server.Requests.Skip(before).Select(r => r.ToString()));
        Assert.Equal("Paused", launch.Server.StateName);

        var running = await _engine.Checkpoints.ResumeAsync(child.Id, CancellationToken.None);
        Assert.Equal(ChildState.Running, running.State);
        Assert.Equal("Running", launch.Server.StateName);
        Assert.Equal([(JsonNode?)"Paused", "Resumed"], launch.Server.Requests.Where(r => r.OperationId == "patchVm").Select(r => r.Body!["state"]).ToList(),
            JsonNodeComparer.Instance);
        Assert.Empty(_fc.AllViolations);
    }

    private sealed class JsonNodeComparer : IEqualityComparer<JsonNode?>
    {
        public static readonly JsonNodeComparer Instance = new();

        public bool Equals(JsonNode? x, JsonNode? y) => JsonNode.DeepEquals(x, y);

        public int GetHashCode(JsonNode? obj) => obj?.ToJsonString().GetHashCode(StringComparison.Ordinal) ?? 0;
    }
}
