using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// The real thing, where it can run: a firecracker binary (<c>FORKD_FIRECRACKER</c> or PATH), a KVM
/// that boots Linux guests, and a guest kernel (<c>FORKD_FC_KERNEL</c>, optional <c>FORKD_FC_INITRD</c>).
/// Boots a parent, snapshots it, forks two children and checks each runs as its own process.
/// Skipped, with the reason printed, anywhere one of those is missing (as on forkd's own CI machines).
/// </summary>
public sealed class FirecrackerBackendEndToEndTests
{
    [SkippableFact]
    public async Task Real_firecracker_boots_snapshots_and_forks_two_running_children()
    {
        var binary = FirecrackerBinary.Locate();
        Skip.If(binary is null, "no firecracker binary (set FORKD_FIRECRACKER or put it on PATH); the API contract is covered by FirecrackerBackendFollowsPublishedApiTests");
        Skip.If(Directory.Exists("/sys/module/kvm_pvm"), "/dev/kvm here is kvm_pvm, which cannot boot a stock Linux guest (see Test-ForkdHost)");
        Skip.IfNot(File.Exists("/dev/kvm"), "no /dev/kvm");
        var kernel = Environment.GetEnvironmentVariable("FORKD_FC_KERNEL");
        Skip.If(string.IsNullOrEmpty(kernel) || !File.Exists(kernel), "set FORKD_FC_KERNEL to an uncompressed guest kernel (vmlinux) to run this test");
        var initrd = Environment.GetEnvironmentVariable("FORKD_FC_INITRD");

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
                InitramfsPath = string.IsNullOrEmpty(initrd) ? null : initrd,
                MemoryMiB = 256,
                Accelerator = Accelerator.Kvm,
                MemoryFilePath = files.MemoryPath,
            }, CancellationToken.None))
            {
                await Task.Delay(TimeSpan.FromSeconds(3)); // let the guest kernel finish booting (VMGenID caveat)
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
                var info = await child.Api.DescribeInstanceAsync(CancellationToken.None);
                Assert.Equal("Running", info.State);
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
}
