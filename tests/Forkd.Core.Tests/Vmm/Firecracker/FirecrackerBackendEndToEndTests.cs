using Forkd.Core.Store;
using Forkd.Core.Engine;
using Forkd.Core.Guest;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// The real thing, where it can run: a firecracker binary (<c>FORKD_FIRECRACKER</c> or PATH), a KVM
/// that boots Linux guests, and a guest image (<c>FORKD_FC_KERNEL</c> + optional <c>FORKD_FC_INITRD</c>,
/// else the newest image in <c>FORKD_CACHE_DIR</c>/images). Boots a parent, waits for its agent over
/// vsock, snapshots it, forks two children and pings each child's agent over its own vsock socket.
/// Skipped, with the reason printed, anywhere one of those is missing (as on forkd's own CI machines).
/// </summary>
[Trait(Tiers.Name, Tiers.Full)]
public sealed class FirecrackerBackendEndToEndTests
{
    [SkippableFact]
    public async Task Real_firecracker_boots_snapshots_and_forks_two_children_that_answer_over_vsock()
    {
        var binary = FirecrackerBinary.Locate();
        Skip.If(binary is null, "no firecracker binary (set FORKD_FIRECRACKER or put it on PATH); the API contract is covered by FirecrackerBackendFollowsPublishedApiTests");
        Skip.If(Directory.Exists("/sys/module/kvm_pvm"), "/dev/kvm here is kvm_pvm, which cannot boot a stock Linux guest (see Test-ForkdHost)");
        Skip.IfNot(File.Exists("/dev/kvm"), "no /dev/kvm");
        var (kernel, initrd) = GuestImage();
        Skip.If(kernel is null, "no guest kernel: set FORKD_FC_KERNEL, or FORKD_CACHE_DIR to a cache with a built guest image (Build-ForkdImage)");

        var dir = Path.Combine(Path.GetTempPath(), "forkd-fce2e-" + Guid.NewGuid().ToString("N")[..8]);
        var backend = new FirecrackerBackend(binary);
        var children = new List<IVmHandle>();
        try
        {
            var files = new VmSnapshotFiles(Path.Combine(dir, "snap", "vmstate"), Path.Combine(dir, "snap", "memory.bin"));
            System.Text.Json.Nodes.JsonObject config;
            await using (var parent = await backend.BootAsync(new VmBootSpec
            {
                Name = "parent",
                WorkDirectory = Path.Combine(dir, "parent"),
                KernelPath = kernel!,
                InitramfsPath = initrd,
                KernelCommandLine = initrd is null ? "" : "rdinit=/init",
                MemoryMiB = 256,
                Accelerator = Accelerator.Kvm,
                MemoryFilePath = files.MemoryPath,
            }, CancellationToken.None))
            {
                if (initrd is not null)
                {
                    // Snapshot only after the guest is fully up (VMGenID caveat, docs/firecracker.md).
                    await (await AgentWait.UntilReadyAsync(parent.Agent, TimeSpan.FromSeconds(60), null, CancellationToken.None)).DisposeAsync();
                }
                else
                {
                    await Task.Delay(TimeSpan.FromSeconds(3));
                }

                await parent.PauseAsync(CancellationToken.None);
                await parent.SaveAsync(files, CancellationToken.None);
                config = parent.BackendConfig;
            }

            for (var n = 1; n <= 2; n++)
            {
                children.Add(await backend.RestoreAsync(new VmRestoreSpec
                {
                    Name = $"child-{n}",
                    WorkDirectory = Path.Combine(dir, $"child-{n}"),
                    Snapshot = files,
                    BackendConfig = config,
                    Accelerator = Accelerator.Kvm,
                }, CancellationToken.None));
            }

            foreach (var child in children.Cast<FirecrackerVm>())
            {
                Assert.Equal("Running", (await child.Api.DescribeInstanceAsync(CancellationToken.None)).State);
                if (initrd is not null)
                {
                    await using var agent = await AgentWait.UntilReadyAsync(child.Agent, TimeSpan.FromSeconds(30), null, CancellationToken.None);
                    await agent.PingAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
                }
            }

            Assert.NotEqual(children[0].ProcessId, children[1].ProcessId);
        }
        finally
        {
            foreach (var c in children)
            {
                await c.DisposeAsync();
            }

            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static (string? Kernel, string? Initrd) GuestImage()
    {
        var kernel = Environment.GetEnvironmentVariable("FORKD_FC_KERNEL");
        if (!string.IsNullOrEmpty(kernel))
        {
            var initrd = Environment.GetEnvironmentVariable("FORKD_FC_INITRD");
            return (File.Exists(kernel) ? kernel : null, string.IsNullOrEmpty(initrd) ? null : initrd);
        }

        var images = Path.Combine(Environment.GetEnvironmentVariable(ForkdPaths.CacheDirVariable) ?? "", "images");
        var newest = Directory.Exists(images)
            ? Directory.EnumerateDirectories(images)
                .Where(d => File.Exists(Path.Combine(d, GuestImageBuilder.KernelFileName)) && File.Exists(Path.Combine(d, GuestImageBuilder.InitramfsFileName)))
                .OrderByDescending(Directory.GetLastWriteTimeUtc).FirstOrDefault()
            : null;
        return newest is null ? (null, null)
            : (Path.Combine(newest, GuestImageBuilder.KernelFileName), Path.Combine(newest, GuestImageBuilder.InitramfsFileName));
    }
}
