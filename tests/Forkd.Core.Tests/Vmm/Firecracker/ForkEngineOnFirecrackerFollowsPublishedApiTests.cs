using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// The whole engine on the Firecracker backend — New-ForkdSnapshot's builder, the forker, the child
/// registry, agent calls over hybrid vsock, stopping — against stand-in Firecracker processes that
/// check every API call against the published description (see <see cref="FakeFirecrackerServer"/>).
/// </summary>
public sealed class ForkEngineOnFirecrackerFollowsPublishedApiTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "forkd-fcengine-" + Guid.NewGuid().ToString("N")[..8]);
    private FakeFirecracker _fc = null!;
    private ForkdPaths _paths = null!;

    public Task InitializeAsync()
    {
        _paths = new ForkdPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "tmp"));
        Directory.CreateDirectory(_paths.TempDirectory);
        _fc = new FakeFirecracker(Path.Combine(_dir, "bin"));
        File.WriteAllText(Path.Combine(_dir, "vmlinux"), "kernel");
        File.WriteAllText(Path.Combine(_dir, "initrd"), "initrd");
        return Task.CompletedTask;
    }

    /// <summary>The composition root, with the Firecracker backend pointed at the stand-in binary.</summary>
    private ForkdEngine EngineWith(FirecrackerBackend backend) =>
        new(_paths, new BackendCatalog().Register(BackendKind.Firecracker, () => backend),
            new ChildRegistry(_paths, isVmmExecutable: FakeFirecracker.IsItsExecutable));

    public async Task DisposeAsync()
    {
        await _fc.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Snapshot_fork_eval_and_stop_run_on_Firecracker_with_only_valid_calls()
    {
        var backend = new FirecrackerBackend(_fc.Binary);
        var engine = EngineWith(backend);
        var registry = engine.Children;

        var made = await engine.CreateSnapshotAsync(new SnapshotRequest
        {
            Tag = "fc",
            Recipe = "custom",
            KernelPath = Path.Combine(_dir, "vmlinux"),
            InitramfsPath = Path.Combine(_dir, "initrd"),
            AgentTimeout = TimeSpan.FromSeconds(10),
        }, BackendKind.Firecracker, null, null, CancellationToken.None);

        Assert.Equal("firecracker", made.Snapshot.Metadata.Backend);
        Assert.Equal("kvm", made.Snapshot.Metadata.Accelerator);
        Assert.Equal(["PUT /boot-source", "PUT /machine-config", "PUT /vsock", "PUT /entropy", "PUT /actions", "PATCH /vm", "PUT /snapshot/create"],
            _fc.Launches.Single().Server.Requests.Select(r => r.ToString()));

        var outcomes = await engine.ForkAsync(
            new ForkRequest { Tag = "fc", Count = 2, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None);
        try
        {
            Assert.All(outcomes, o => Assert.Null(o.Error));
            var children = outcomes.Select(o => o.Child!).ToList();
            Assert.All(children, c => Assert.Equal(AgentTransport.Vsock, c.Agent.Transport));
            Assert.All(children, c => Assert.Equal(BackendKind.Firecracker, c.Backend));
            Assert.Equal(2, registry.List().Count(c => c.State == ChildState.Running));
            foreach (var child in children)
            {
                var r = await AgentCalls.EvalAsync(registry, child, "1 + 1", TimeSpan.FromSeconds(5), CancellationToken.None);
                Assert.Null(r.Error);
                Assert.Equal("1 + 1", r.Value);
            }

            // Each child: one fresh process, one PUT /snapshot/load, nothing configured before it.
            var childLaunches = _fc.Launches.Skip(1).ToList();
            Assert.Equal(2, childLaunches.Count);
            Assert.All(childLaunches, l => Assert.Equal(["PUT /snapshot/load"], l.Server.Requests.Select(r => r.ToString())));
        }
        finally
        {
            foreach (var o in outcomes.Where(o => o.Child is not null))
            {
                await ChildStopper.StopAsync(registry, o.Child!);
            }
        }

        Assert.Empty(_fc.AllViolations);
        Assert.All(_fc.Launches, l => Assert.False(Directory.Exists($"/proc/{l.Pid}") && !File.ReadAllText($"/proc/{l.Pid}/stat").Contains(") Z", StringComparison.Ordinal)));
        Assert.DoesNotContain(registry.List(), c => c.State == ChildState.Running);
    }

    [SkippableFact]
    public async Task With_Network_each_Firecracker_child_runs_in_its_own_namespace_and_the_parent_in_a_private_one()
    {
        Skip.If(NativeFile.EffectiveUid != 0 || HostCommand.TryRun("nft", ["--version"]).Code != 0, "needs root and nftables to make network namespaces");
        Skip.If(ChildNetworks.ListNamespaces().Any(ChildNetworks.IsOurNamespace), "forkd child namespaces already exist on this host; not touching them");
        var forward = File.ReadAllText("/proc/sys/net/ipv4/ip_forward");
        var backend = new FirecrackerBackend(_fc.Binary);
        var engine = EngineWith(backend);
        var registry = engine.Children;
        IReadOnlyList<ForkOutcome> outcomes = [];
        try
        {
            ChildNetworks.EnsureHost();
            ChildNetworks.EnsureChild(1);
            ChildNetworks.EnsureChild(2);
            await engine.CreateSnapshotAsync(new SnapshotRequest
                {
                    Tag = "fcnet",
                    Recipe = "custom",
                    KernelPath = Path.Combine(_dir, "vmlinux"),
                    AgentTimeout = TimeSpan.FromSeconds(10),
                    Network = true,
                }, BackendKind.Firecracker, null, null, CancellationToken.None);
            var parent = _fc.Launches.Single();
            Assert.Contains("PUT /network-interfaces/eth0", parent.Server.Requests.Select(r => r.ToString()));
            Assert.Contains(" ip=10.42.0.2::10.42.0.1:255.255.255.0::eth0:off", (string?)parent.Server.Requests.First().Body!["boot_args"], StringComparison.Ordinal);
            Assert.DoesNotContain(ChildNetworks.ListNamespaces(), n => n.StartsWith("forkd-boot-", StringComparison.Ordinal));

            outcomes = await engine.ForkAsync(
                new ForkRequest { Tag = "fcnet", Count = 2, Network = true, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None);

            Assert.All(outcomes, o => Assert.Null(o.Error));
            var children = outcomes.Select(o => o.Child!).OrderBy(c => c.NetworkNamespace, StringComparer.Ordinal).ToList();
            Assert.Equal(["forkd-child-1", "forkd-child-2"], children.Select(c => c.NetworkNamespace));
            foreach (var child in children)
            {
                var inside = HostCommand.Run("ip", ["netns", "exec", child.NetworkNamespace!, "readlink", "/proc/self/ns/net"]).Trim();
                Assert.Equal(inside, new FileInfo($"/proc/{child.ProcessId}/ns/net").LinkTarget);
                Assert.Equal(new AgentEndpoint(AgentTransport.Tcp, "10.42.0.2", 8888, child.NetworkNamespace), child.NetworkAgent);
            }

            Assert.Empty(_fc.AllViolations);
        }
        finally
        {
            foreach (var o in outcomes.Where(o => o.Child is not null))
            {
                await ChildStopper.StopAsync(registry, o.Child!);
            }

            foreach (var item in ChildNetworks.Find().Where(i => i.Kind == "Namespace"))
            {
                ChildNetworks.Remove(item);
            }

            foreach (var item in ChildNetworks.Find())
            {
                ChildNetworks.Remove(item);
            }

            File.WriteAllText("/proc/sys/net/ipv4/ip_forward", forward);
        }
    }

    [Fact]
    public async Task A_missing_firecracker_binary_is_a_clear_error_before_anything_starts()
    {
        var saved = Environment.GetEnvironmentVariable(FirecrackerBinary.PathVariable);
        Environment.SetEnvironmentVariable(FirecrackerBinary.PathVariable, Path.Combine(_dir, "no-such-firecracker"));
        try
        {
            var error = Assert.Throws<ForkdException>(FirecrackerBinary.Require);
            Assert.Equal("FirecrackerNotFound", error.ErrorId);
            Assert.Contains("Test-ForkdHost", error.Hint, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(FirecrackerBinary.PathVariable, saved);
        }

        await Task.CompletedTask;
    }
}
