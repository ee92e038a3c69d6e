using Forkd.Core.Store;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core.Guest;
using Forkd.Core.Host;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// Firecracker cannot run on this project's machines, so the backend is tested against Firecracker's
/// published API description (firecracker-api.yaml): a stand-in process serves the API on a real
/// Unix socket, checks every request's method, path and body against the description and the
/// documented call-order rules, and answers as the description says. A real firecracker binary
/// is exercised by <see cref="FirecrackerBackendEndToEndTests"/> where one exists.
/// </summary>
public sealed class FirecrackerBackendFollowsPublishedApiTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "forkd-fctest-" + Guid.NewGuid().ToString("N")[..8]);
    private FakeFirecracker _fc = null!;
    private FirecrackerBackend _backend = null!;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _fc = new FakeFirecracker(Path.Combine(_dir, "bin"));
        _backend = new FirecrackerBackend(_fc.Binary);
        File.WriteAllText(Path.Combine(_dir, "vmlinux"), "kernel");
        File.WriteAllText(Path.Combine(_dir, "initrd.img"), "initrd");
        File.WriteAllText(Path.Combine(_dir, "rootfs.ext4"), "rootfs");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _fc.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private VmBootSpec BootSpec(string name = "parent") => new()
    {
        Name = name,
        WorkDirectory = Path.Combine(_dir, name),
        KernelPath = Path.Combine(_dir, "vmlinux"),
        InitramfsPath = Path.Combine(_dir, "initrd.img"),
        KernelCommandLine = "init=/init quiet",
        MemoryMiB = 256,
        VcpuCount = 2,
        Accelerator = Accelerator.Kvm,
        MemoryFilePath = Path.Combine(_dir, "unused-memory"),
        Drives = [new DriveSpec("rootfs", Path.Combine(_dir, "rootfs.ext4"), ReadOnly: true, IsRoot: true)],
    };

    private static string[] Calls(FakeFirecracker.Launch launch) => launch.Server.Requests.Select(r => r.ToString()).ToArray();

    [Fact]
    public async Task Boot_configures_every_device_before_InstanceStart_with_bodies_the_description_accepts()
    {
        await using var vm = await _backend.BootAsync(BootSpec(), CancellationToken.None);

        var launch = Assert.Single(_fc.Launches);
        Assert.Empty(_fc.AllViolations);
        Assert.Equal(
            ["PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config", "PUT /vsock", "PUT /entropy", "PUT /actions"],
            Calls(launch));
        Assert.Equal(["--api-sock", Path.Combine(_dir, "parent", "fc.sock")], launch.Arguments);
        Assert.Equal(launch.Pid, vm.ProcessId);
        Assert.Equal(Path.Combine(_dir, "parent"), launch.WorkingDirectory);

        var requests = launch.Server.Requests.ToArray();
        Assert.Equal("console=ttyS0 reboot=k panic=1 init=/init quiet", (string?)requests[0].Body!["boot_args"]);
        Assert.Equal(2, (int?)requests[2].Body!["vcpu_count"]);
        Assert.Equal("InstanceStart", (string?)requests[5].Body!["action_type"]);

        // The drive is named relative to the VM's work dir and resolves to the shared image there.
        Assert.Equal("disk-rootfs.img", (string?)requests[1].Body!["path_on_host"]);
        Assert.True((bool?)requests[1].Body!["is_read_only"]);
        Assert.Equal(Path.Combine(_dir, "rootfs.ext4"), new FileInfo(Path.Combine(_dir, "parent", "disk-rootfs.img")).LinkTarget);
        Assert.Equal("Running", launch.Server.StateName);
    }

    [Fact]
    public async Task Pause_then_full_snapshot_writes_vmstate_and_memory()
    {
        await using var vm = await _backend.BootAsync(BootSpec(), CancellationToken.None);
        var files = new VmSnapshotFiles(Path.Combine(_dir, "snap", "vmstate"), Path.Combine(_dir, "snap", "memory.bin"));

        await vm.PauseAsync(CancellationToken.None);
        await vm.SaveAsync(files, CancellationToken.None);

        var launch = Assert.Single(_fc.Launches);
        Assert.Empty(_fc.AllViolations);
        Assert.Equal(["PATCH /vm", "PUT /snapshot/create"], Calls(launch)[^2..]);
        var create = launch.Server.Requests.Last().Body!;
        Assert.Equal("Full", (string?)create["snapshot_type"]);
        Assert.True(File.Exists(files.VmStatePath));
        Assert.True(File.Exists(files.MemoryPath));
    }

    [Fact]
    public async Task Snapshot_while_running_is_refused_as_Firecracker_refuses_it()
    {
        await using var vm = await _backend.BootAsync(BootSpec(), CancellationToken.None);
        var files = new VmSnapshotFiles(Path.Combine(_dir, "snap", "vmstate"), Path.Combine(_dir, "snap", "memory.bin"));

        var error = await Assert.ThrowsAsync<ForkdException>(() => vm.SaveAsync(files, CancellationToken.None));

        Assert.Equal("FirecrackerApiError", error.ErrorId);
        Assert.Contains("must be Paused", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Child_loads_the_snapshot_with_the_File_memory_backend_on_a_fresh_process_and_runs()
    {
        var (files, config) = await MakeSnapshotAsync();

        await using var child = await _backend.RestoreAsync(new VmRestoreSpec
        {
            Name = "child-1",
            WorkDirectory = Path.Combine(_dir, "child-1"),
            Snapshot = files,
            BackendConfig = config,
            Accelerator = Accelerator.Kvm,
        }, CancellationToken.None);

        var launch = _fc.Launches.Last();
        Assert.Empty(_fc.AllViolations);
        Assert.Equal(["PUT /snapshot/load"], Calls(launch));
        var load = launch.Server.Requests.Single().Body!;
        Assert.Equal("File", (string?)load["mem_backend"]!["backend_type"]);
        Assert.Equal(files.MemoryPath, (string?)load["mem_backend"]!["backend_path"]);
        Assert.Equal(files.VmStatePath, (string?)load["snapshot_path"]);
        Assert.True((bool?)load["resume_vm"]);
        Assert.True(launch.Server.LoadedFromSnapshot);
        Assert.Equal("Running", launch.Server.StateName);
        Assert.Equal(launch.Pid, child.ProcessId);
    }

    [Fact]
    public async Task Children_reach_their_own_guest_agent_over_hybrid_vsock()
    {
        var (files, config) = await MakeSnapshotAsync();
        var children = new List<FirecrackerVm>();
        try
        {
            for (var n = 1; n <= 2; n++)
            {
                children.Add((FirecrackerVm)await _backend.RestoreAsync(new VmRestoreSpec
                {
                    Name = $"child-{n}",
                    WorkDirectory = Path.Combine(_dir, $"child-{n}"),
                    Snapshot = files,
                    BackendConfig = config,
                    Accelerator = Accelerator.Kvm,
                }, CancellationToken.None));
            }

            foreach (var child in children)
            {
                Assert.Equal(AgentTransport.Vsock, child.Agent.Transport);
                Assert.Equal(Path.Combine(child.WorkDirectory, "vsock.sock"), child.Agent.Address);
                await using var agent = await AgentClient.ConnectHybridVsockAsync(child.Agent.Address, child.Agent.Port!.Value, TimeSpan.FromSeconds(5), CancellationToken.None);
                var reply = await agent.EvalAsync(child.Name, TimeSpan.FromSeconds(5), CancellationToken.None);
                Assert.Equal($"'{child.Name}' from {Path.GetFileName(child.WorkDirectory)}", reply.Result);
            }

            var refused = await Assert.ThrowsAsync<ForkdException>(() =>
                AgentClient.ConnectHybridVsockAsync(children[0].Agent.Address, 9999, TimeSpan.FromMilliseconds(300), CancellationToken.None));
            Assert.Equal("AgentUnreachable", refused.ErrorId);
            Assert.Empty(_fc.AllViolations);
        }
        finally
        {
            foreach (var c in children)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_fault_message_from_snapshot_load_becomes_FirecrackerApiError_and_the_child_process_is_gone()
    {
        var (files, config) = await MakeSnapshotAsync();
        _fc.Configure = s => s.Faults["PUT /snapshot/load"] = "Load snapshot error: Failed to restore from snapshot: CRC mismatch";

        var error = await Assert.ThrowsAsync<ForkdException>(() => _backend.RestoreAsync(new VmRestoreSpec
        {
            Name = "child-1",
            WorkDirectory = Path.Combine(_dir, "child-1"),
            Snapshot = files,
            BackendConfig = config,
        }, CancellationToken.None));

        Assert.Equal("FirecrackerApiError", error.ErrorId);
        Assert.Equal(ForkdErrorKind.ProtocolError, error.Kind);
        Assert.Contains("PUT /snapshot/load (400): Load snapshot error: Failed to restore from snapshot: CRC mismatch", error.Message, StringComparison.Ordinal);
        var pid = _fc.Launches.Last().Pid;
        Assert.False(Directory.Exists($"/proc/{pid}") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal),
            "the failed child's Firecracker process must be killed");
    }

    [Fact]
    public async Task Configuring_a_child_before_loading_is_caught_by_the_call_order_rules()
    {
        var (files, _) = await MakeSnapshotAsync();
        var childDir = Path.Combine(_dir, "bad-child");
        await using var server = new FakeFirecrackerServer(Path.Combine(_dir, "bad.sock"), childDir, _fc.Api);
        using var api = new FirecrackerApiClient(server.ApiSocket);

        await api.PutMachineConfigAsync(new FcMachineConfiguration(1, 256), CancellationToken.None);
        var error = await Assert.ThrowsAsync<ForkdException>(() => api.LoadSnapshotAsync(
            new FcSnapshotLoad(files.VmStatePath, FcMemoryBackend.File(files.MemoryPath), ResumeVm: true), CancellationToken.None));

        Assert.Contains("only on a fresh process", error.Message, StringComparison.Ordinal);
        Assert.Single(server.Violations);
    }

    [Fact]
    public async Task Pre_boot_calls_after_InstanceStart_are_caught_by_the_call_order_rules()
    {
        await using var vm = (FirecrackerVm)await _backend.BootAsync(BootSpec(), CancellationToken.None);

        var error = await Assert.ThrowsAsync<ForkdException>(() => vm.Api.PutMachineConfigAsync(new FcMachineConfiguration(1, 128), CancellationToken.None));

        Assert.Contains("pre-boot only", error.Message, StringComparison.Ordinal);
        Assert.Single(_fc.AllViolations);
    }

    [Theory]
    [InlineData("""{"vcpu_count":"2","mem_size_mib":256}""", "body.vcpu_count: expected an integer")]
    [InlineData("""{"vcpu_count":2}""", "required property 'mem_size_mib' is missing")]
    [InlineData("""{"vcpu_count":2,"mem_size_mib":256,"memory":1}""", "unknown property 'memory'")]
    [InlineData("""{"vcpu_count":64,"mem_size_mib":256}""", "above the maximum 32")]
    [InlineData("""{"vcpu_count":2,"mem_size_mib":256,"huge_pages":"1G"}""", "'1G' is not one of None, Transparent, 2M")]
    public void The_validator_rejects_bodies_that_break_the_description(string body, string expected)
    {
        var api = FirecrackerApiDescription.Published;
        var (_, op, _) = api.Find("PUT", "/machine-config")!.Value;

        var errors = api.Validate(JsonNode.Parse(body), FirecrackerApiDescription.BodySchema(op, out _)!);

        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void The_validator_accepts_every_body_the_backend_sends()
    {
        var api = FirecrackerApiDescription.Published;
        var bodies = new (string Method, string Path, object Body)[]
        {
            ("PUT", "/boot-source", new FcBootSource("vmlinux", "console=ttyS0", "initrd")),
            ("PUT", "/drives/rootfs", new FcDrive("rootfs", "disk-rootfs.img", true, true)),
            ("PATCH", "/drives/rootfs", new FcPartialDrive("rootfs", "other.img")),
            ("PUT", "/machine-config", new FcMachineConfiguration(2, 512)),
            ("PUT", "/network-interfaces/eth0", new FcNetworkInterface("eth0", "forkd-tap0", "AA:FC:00:00:00:01")),
            ("PUT", "/vsock", new FcVsock(3, "vsock.sock")),
            ("PUT", "/entropy", new FcEntropyDevice()),
            ("PUT", "/actions", FcInstanceAction.InstanceStart),
            ("PATCH", "/vm", FcVmState.Paused),
            ("PATCH", "/vm", FcVmState.Resumed),
            ("PUT", "/snapshot/create", new FcSnapshotCreate("vmstate", "memory.bin")),
            ("PUT", "/snapshot/load", new FcSnapshotLoad("vmstate", FcMemoryBackend.File("memory.bin"), true)),
        };
        foreach (var (method, path, body) in bodies)
        {
            var (_, op, _) = api.Find(method, path) ?? throw new Xunit.Sdk.XunitException($"{method} {path} is not in the description");
            var json = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(body, body.GetType(), OmitNulls));
            Assert.Empty(api.Validate(json, FirecrackerApiDescription.BodySchema(op, out _)!));
        }
    }

    [Fact]
    public async Task A_writable_disk_without_reflink_support_is_refused_before_anything_starts()
    {
        Skip.If(FileClone.Supported(_dir), $"{_dir} supports reflinks here, so a writable disk is allowed");
        var spec = BootSpec() with { Drives = [new DriveSpec("rootfs", Path.Combine(_dir, "rootfs.ext4"), ReadOnly: false, IsRoot: true)] };

        var error = await Assert.ThrowsAsync<ForkdException>(() => _backend.BootAsync(spec, CancellationToken.None));

        Assert.Equal("FirecrackerWritableDiskNeedsReflink", error.ErrorId);
        Assert.Empty(_fc.Launches);
    }

    [SkippableFact]
    public async Task A_networked_parent_gets_its_tap_in_a_private_namespace_that_goes_with_it()
    {
        Skip.If(NativeFile.EffectiveUid != 0, "creating a network namespace needs root");
        var vm = await _backend.BootAsync(BootSpec() with { Nic = new NicSpec() }, CancellationToken.None);
        string? bootNamespace;
        try
        {
            var launch = Assert.Single(_fc.Launches);
            Assert.Empty(_fc.AllViolations);
            Assert.Equal(["PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config", "PUT /network-interfaces/eth0", "PUT /vsock", "PUT /entropy", "PUT /actions"],
                Calls(launch));
            var nic = launch.Server.Requests.Single(r => r.Path == "/network-interfaces/eth0").Body!;
            Assert.Equal("forkd-tap0", (string?)nic["host_dev_name"]);
            Assert.Equal("AA:FC:00:00:00:01", (string?)nic["guest_mac"]);

            // The process runs in a namespace of its own, which holds the tap.
            bootNamespace = ChildNetworks.ListNamespaces().Single(n => n.StartsWith("forkd-boot-" + Environment.ProcessId + "-", StringComparison.Ordinal));
            Assert.NotEqual(new FileInfo("/proc/self/ns/net").LinkTarget, new FileInfo($"/proc/{launch.Pid}/ns/net").LinkTarget);
            Assert.Equal(0, HostCommand.TryRun("ip", ["-n", bootNamespace, "link", "show", "forkd-tap0"]).Code);
            Assert.NotNull(vm.BackendConfig["nic"]);
        }
        finally
        {
            await vm.KillAsync();
        }

        Assert.DoesNotContain(bootNamespace, ChildNetworks.ListNamespaces());
    }

    [Fact]
    public async Task Firecracker_is_refused_without_KVM()
    {
        var error = await Assert.ThrowsAsync<ForkdException>(() => _backend.BootAsync(BootSpec() with { Accelerator = Accelerator.Tcg }, CancellationToken.None));

        Assert.Equal("FirecrackerNeedsKvm", error.ErrorId);
    }

    private static readonly System.Text.Json.JsonSerializerOptions OmitNulls =
        new() { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    private async Task<(VmSnapshotFiles Files, JsonObject Config)> MakeSnapshotAsync()
    {
        var files = new VmSnapshotFiles(Path.Combine(_dir, "snap", "vmstate"), Path.Combine(_dir, "snap", "memory.bin"));
        await using var parent = await _backend.BootAsync(BootSpec(), CancellationToken.None);
        await parent.PauseAsync(CancellationToken.None);
        await parent.SaveAsync(files, CancellationToken.None);
        var config = parent.BackendConfig;
        await parent.KillAsync();
        return (files, config);
    }
}
