using Forkd.Core.Vmm;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// Snapshot directories written by forkd 0.1.3 (only vmstate/memory/volumes in snapshot.json, another
/// host's paths) fork through the engine on the Firecracker backend, against stand-in Firecracker
/// processes that judge every call by the published API description.
/// </summary>
public sealed class ForkdMadeSnapshotFollowsPublishedApiTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "forkd-fcforkd-" + Guid.NewGuid().ToString("N")[..8]);
    private FakeFirecracker _fc = null!;
    private ForkdTcpAgentStandIn _agent = null!;
    private ForkdPaths _paths = null!;
    private ChildRegistry _registry = null!;

    public Task InitializeAsync()
    {
        _paths = new ForkdPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "tmp"));
        Directory.CreateDirectory(_paths.TempDirectory);
        _fc = new FakeFirecracker(Path.Combine(_dir, "bin"));
        _agent = new ForkdTcpAgentStandIn();
        _registry = new ChildRegistry(_paths, isVmmExecutable: FakeFirecracker.IsItsExecutable);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var child in _registry.List().Where(c => c.State == ChildState.Running))
        {
            await ChildStopper.StopAsync(_registry, child);
        }

        await _agent.DisposeAsync();
        await _fc.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private ForkdSnapshotFixture ForkdSnapshot(string tag, string? rootfs = null, bool withVolume = true, bool volumeReadOnly = false,
        bool rootfsReadOnly = true)
    {
        var hostFiles = Path.Combine(_dir, "forkd-host");
        Directory.CreateDirectory(hostFiles);
        rootfs ??= Path.Combine(hostFiles, "python-rootfs.ext4");
        if (Path.IsPathRooted(rootfs))
        {
            File.WriteAllBytes(rootfs, new byte[4096]);
        }

        var volumes = new List<string>();
        if (withVolume)
        {
            volumes.Add(Path.Combine(hostFiles, "cache.img"));
            File.WriteAllBytes(volumes[0], new byte[4096]);
        }

        var fixture = new ForkdSnapshotFixture(_paths.SnapshotDirectory(tag), rootfs, volumes, volumesReadOnly: volumeReadOnly, rootfsReadOnly: rootfsReadOnly);
        _fc.Configure = server => server.ReadSavedState = path => path == Path.Combine(fixture.Directory, "vmstate") ? fixture.SavedState() : null;
        return fixture;
    }

    /// <summary>The composition root with the Firecracker backend pointed at the stand-in binary and agent.</summary>
    private Forker Forker(FirecrackerBackend? backend = null)
    {
        var chosen = backend ?? new FirecrackerBackend(_fc.Binary) { ForkdAgentEndpoint = _agent.Endpoint };
        return new ForkdEngine(_paths, new BackendCatalog().Register(BackendKind.Firecracker, () => chosen), _registry).Forker;
    }

    [Fact]
    public async Task A_forkd_made_snapshot_forks_two_children_each_with_exactly_one_valid_load_call_FollowsPublishedApi()
    {
        // Read-only volume: a writable one shared by two children is refused (VolumeSharedWritable), as for our snapshots.
        var snapshot = ForkdSnapshot("pyagent", volumeReadOnly: true);

        var outcomes = await Forker().ForkAsync(new ForkRequest { Tag = "pyagent", Count = 2, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None);

        Assert.All(outcomes, o => Assert.Null(o.Error));
        Assert.Empty(_fc.AllViolations);
        Assert.Equal(2, _fc.Launches.Count);
        foreach (var launch in _fc.Launches)
        {
            // A fresh process and one call: nothing may be configured before /snapshot/load.
            var load = Assert.Single(launch.Server.Requests);
            Assert.Equal("PUT /snapshot/load", load.ToString());
            Assert.Equal(Path.Combine(snapshot.Directory, "vmstate"), (string?)load.Body!["snapshot_path"]); // rebased, not /home/u/...
            Assert.Equal(Path.Combine(snapshot.Directory, "memory.bin"), (string?)load.Body["mem_backend"]!["backend_path"]);
            Assert.Equal("File", (string?)load.Body["mem_backend"]!["backend_type"]);
            Assert.True((bool?)load.Body["resume_vm"]);
            Assert.True(launch.Server.LoadedFromSnapshot);
        }

        var children = outcomes.Select(o => o.Child!).ToList();
        Assert.All(children, c => Assert.Equal(new AgentEndpoint(AgentTransport.Tcp, "127.0.0.1", _agent.Endpoint.Port), c.Agent));
        Assert.All(children, c => Assert.Equal(BackendKind.Firecracker, c.Backend));
        Assert.Equal(2, _registry.List().Count(c => c.State == ChildState.Running));
        var eval = await AgentCalls.EvalAsync(_registry, children[0], "1+1", TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Null(eval.Error);
        Assert.True(_agent.Connections >= 3, "each child was pinged and one evaluated over forkd's TCP transport");
    }

    [Fact]
    public async Task A_read_write_rootfs_shared_by_two_children_is_refused_unless_forced_FollowsPublishedApi()
    {
        // forkd booted *.ext4 read-write, and every child reopens that one file: forkd's corruption bug (spec 11.2).
        var snapshot = ForkdSnapshot("rw", withVolume: false, rootfsReadOnly: false);

        var refused = await Assert.ThrowsAsync<ForkdException>(() => Forker().ForkAsync(
            new ForkRequest { Tag = "rw", Count = 2, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None));
        Assert.Equal("VolumeSharedWritable", refused.ErrorId);
        Assert.Contains(snapshot.RootfsPath, refused.Message, StringComparison.Ordinal);
        Assert.Empty(_fc.Launches);

        var warnings = new List<string>();
        var forced = await Forker().ForkAsync(new ForkRequest
        {
            Tag = "rw", Count = 2, AgentTimeout = TimeSpan.FromSeconds(10), AllowSharedWritableVolumes = true, OnWarning = warnings.Add,
        }, null, CancellationToken.None);
        Assert.All(forced, o => Assert.Null(o.Error));
        Assert.Contains(warnings, w => w.Contains(snapshot.RootfsPath, StringComparison.Ordinal));
        Assert.Empty(_fc.AllViolations);
    }

    [Fact]
    public void The_settings_are_what_forkd_used_memory_from_the_image_drives_and_tap_from_the_vmstate()
    {
        var snapshot = ForkdSnapshot("pyagent");
        var metadata = ForkdSnapshotLayout.WithBackendSettings(snapshot.Directory, SnapshotMetadata.Load(snapshot.Directory));

        Assert.Equal("firecracker", metadata.Backend);
        Assert.Equal("kvm", metadata.Accelerator);
        Assert.Equal(512, metadata.MemoryMiB);
        Assert.Equal(2, metadata.VcpuCount);
        var config = metadata.BackendConfig!;
        Assert.Equal("10.42.0.2", (string?)config["agent"]!["address"]);
        Assert.Equal(8888, (int?)config["agent"]!["port"]);
        Assert.Equal("forkd-tap0", (string?)config["nic"]!["tap"]);
        Assert.Equal(
            [("rootfs", snapshot.RootfsPath, true, true), ("vol0", snapshot.VolumePaths[0], false, false)],
            config["forkdDrives"]!.AsArray().Select(d => ((string)d!["id"]!, (string)d["path"]!, (bool)d["isRoot"]!, (bool)d["readOnly"]!)));
        Assert.Null(SnapshotMetadata.Load(snapshot.Directory).BackendConfig); // nothing written to the snapshot
    }

    [Fact]
    public async Task Without_a_firecracker_binary_the_fork_fails_with_FirecrackerNotFound_and_how_to_supply_it_FollowsPublishedApi()
    {
        ForkdSnapshot("pyagent");
        var saved = Environment.GetEnvironmentVariable(FirecrackerBinary.PathVariable);
        Environment.SetEnvironmentVariable(FirecrackerBinary.PathVariable, Path.Combine(_dir, "no-such-firecracker"));
        try
        {
            // Refused for the whole fork before any child starts (the backend is not available on this host).
            var error = await Assert.ThrowsAsync<ForkdException>(() => Forker(new FirecrackerBackend()).ForkAsync(
                new ForkRequest { Tag = "pyagent", AgentTimeout = TimeSpan.FromSeconds(5) }, null, CancellationToken.None));

            Assert.Equal("FirecrackerNotFound", error.ErrorId);
            Assert.Equal(ForkdErrorKind.NotFound, error.Kind);
            Assert.Contains("FORKD_FIRECRACKER", error.Message + error.Hint, StringComparison.Ordinal);
            Assert.Contains("PATH", error.Message + error.Hint, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FirecrackerBinary.PathVariable, saved);
        }

        Assert.Empty(_fc.Launches);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_paths.TempDirectory));
    }

    [Fact]
    public async Task A_rootfs_missing_at_the_path_recorded_in_the_vmstate_fails_with_RootfsNotFound_naming_it_FollowsPublishedApi()
    {
        var snapshot = ForkdSnapshot("pyagent");
        File.Delete(snapshot.RootfsPath);

        var outcome = Assert.Single(await Forker().ForkAsync(new ForkRequest { Tag = "pyagent", AgentTimeout = TimeSpan.FromSeconds(5) }, null, CancellationToken.None));

        Assert.Equal("RootfsNotFound", outcome.Error?.ErrorId);
        Assert.Equal(ForkdErrorKind.NotFound, outcome.Error!.Kind);
        Assert.Contains(snapshot.RootfsPath, outcome.Error.Message, StringComparison.Ordinal);
        Assert.Contains(snapshot.RootfsPath, outcome.Error.Hint, StringComparison.Ordinal);
        Assert.Equal(snapshot.RootfsPath, outcome.Error.Target);
        Assert.Empty(_fc.Launches); // refused before any Firecracker process started
        Assert.Empty(Directory.EnumerateFileSystemEntries(_paths.TempDirectory));
    }

    [Fact]
    public async Task A_relative_rootfs_path_is_served_by_the_snapshots_own_rootfs_ext4_in_each_child_work_dir_FollowsPublishedApi()
    {
        var snapshot = ForkdSnapshot("rel", rootfs: "python-rootfs.ext4", withVolume: false);
        File.WriteAllBytes(Path.Combine(snapshot.Directory, "rootfs.ext4"), new byte[4096]);

        var outcome = Assert.Single(await Forker().ForkAsync(new ForkRequest { Tag = "rel", AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None));

        Assert.Null(outcome.Error);
        Assert.Empty(_fc.AllViolations); // the stand-in found the drive at the recorded path, relative to its working directory
        var link = new FileInfo(Path.Combine(outcome.Child!.WorkDirectory, "python-rootfs.ext4"));
        Assert.Equal(Path.Combine(snapshot.Directory, "rootfs.ext4"), link.LinkTarget);
    }

    [Fact]
    public void The_vmstate_reader_finds_drives_and_tap_and_nothing_in_filler()
    {
        var state = ForkdSnapshotFixture.VmState("/srv/images/root fs.ext4", ["/var/lib/forkd/vol/a.img", "/v/b.img"], "tap-7",
            rootfsReadOnly: false, volumesReadOnly: true);

        var devices = FirecrackerVmState.Parse(state);

        Assert.Equal([("rootfs", "/srv/images/root fs.ext4", true, (bool?)false), ("vol0", "/var/lib/forkd/vol/a.img", false, true), ("vol1", "/v/b.img", false, true)],
            devices.Drives.Select(d => (d.Id, d.PathOnHost, d.IsRoot, d.ReadOnly)));
        Assert.Equal("rootfs", devices.Root?.Id);
        Assert.Equal([new SavedNic("eth0", "tap-7")], devices.Nics);
        Assert.Empty(FirecrackerVmState.Parse(new byte[64]).Drives);
        Assert.All(FirecrackerVmState.Parse(ForkdSnapshotFixture.VmState("/r.ext4", [], null, featureBits: false)).Drives, d => Assert.Null(d.ReadOnly));
    }

    [Theory]
    [InlineData("/images/python-rootfs.ext4", false)] // forkd's rule (spec 1.6): extension exactly "ext4" = read-write
    [InlineData("/images/python-rootfs.squashfs", true)]
    [InlineData("/images/rootfs.EXT4", true)]
    public void Without_readable_feature_bits_the_rootfs_mode_follows_forkds_extension_rule(string rootfs, bool readOnly)
    {
        var dir = Path.Combine(_dir, "unreadable");
        _ = new ForkdSnapshotFixture(dir, rootfs, []);
        File.WriteAllBytes(Path.Combine(dir, "vmstate"), ForkdSnapshotFixture.VmState(rootfs, [], null, featureBits: false));

        var config = ForkdSnapshotLayout.BackendConfigFor(dir, SnapshotMetadata.Load(dir));

        Assert.Equal(readOnly, (bool?)config["forkdDrives"]![0]!["readOnly"]);
    }
}

/// <summary>The tap a forkd parent recorded, when a child runs in one of our namespaces (which hold only forkd-tap0).</summary>
public sealed class ForkdSnapshotNetworkOverrideFollowsPublishedApiTests
{
    private static readonly System.Text.Json.JsonSerializerOptions AsTheClientSends =
        new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    [Theory]
    [InlineData("forkd-tap0", "forkd-child-1", false)] // forkd's default tap: nothing to override
    [InlineData("tap-7", null, false)]                 // host namespace: the recorded tap is opened as forkd would
    [InlineData("tap-7", "forkd-child-1", true)]
    public void Only_a_different_tap_inside_a_child_namespace_is_overridden_FollowsPublishedApi(string recordedTap, string? netns, bool overridden)
    {
        var config = new System.Text.Json.Nodes.JsonObject { ["nic"] = new System.Text.Json.Nodes.JsonObject { ["deviceId"] = "eth0", ["tap"] = recordedTap } };

        var overrides = ForkdSnapshotLayout.NetworkOverridesFor(config, netns);

        Assert.Equal(overridden, overrides is not null);
        var body = System.Text.Json.JsonSerializer.SerializeToNode(new FcSnapshotLoad("/s/vmstate", FcMemoryBackend.File("/s/memory.bin"), true, overrides), AsTheClientSends);
        var api = FirecrackerApiDescription.Published;
        var load = api.Find("PUT", "/snapshot/load")!.Value;
        Assert.Empty(api.Validate(body, FirecrackerApiDescription.BodySchema(load.Operation, out _)!));
        Assert.Equal(overridden, body!.AsObject().ContainsKey("network_overrides"));
        if (overridden)
        {
            Assert.Equal("forkd-tap0", (string?)body["network_overrides"]![0]!["host_dev_name"]);
            Assert.Equal("eth0", (string?)body["network_overrides"]![0]!["iface_id"]);
        }
    }
}
