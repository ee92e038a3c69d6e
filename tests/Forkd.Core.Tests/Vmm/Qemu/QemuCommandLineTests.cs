using System.Collections.Specialized;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Vmm.Qemu;

public sealed class QemuCommandLineTests
{
    private static readonly QemuMachineConfig Machine = new()
    {
        KernelPath = "/snap/vmlinux",
        InitramfsPath = "/snap/initramfs.img",
        Append = QemuCommandLine.KernelArguments(2445434, "rdinit=/init"),
        MemoryMiB = 256,
    };

    [Fact]
    public void Parent_maps_guest_ram_shared_and_child_maps_it_private_and_waits_for_incoming_state()
    {
        var parent = QemuCommandLine.Build(Machine, "/tmp/forkd-parent-x", "/snap/memory.bin", incoming: false);
        var child = QemuCommandLine.Build(Machine, "/tmp/forkd-child-x", "/snap/memory.bin", incoming: true);
        Assert.Contains("memory-backend-file,id=mem,size=256M,mem-path=/snap/memory.bin,share=on", parent);
        Assert.Contains("memory-backend-file,id=mem,size=256M,mem-path=/snap/memory.bin,share=off", child);
        Assert.DoesNotContain(child, a => a.Contains("readonly", StringComparison.Ordinal)); // readonly=on hangs the guest in QEMU 7.2
        Assert.DoesNotContain("-incoming", parent);
        Assert.Equal("defer", child[child.ToList().IndexOf("-incoming") + 1]);
        Assert.Contains("-daemonize", child);
        Assert.Contains("socket,id=agent,path=/tmp/forkd-child-x/agent.sock,server=on,wait=off", child);
        Assert.Contains("virtserialport,chardev=agent,name=forkd.agent", child);
        // Everything but the work-dir-specific paths and the memory sharing mode is identical.
        static IEnumerable<string> Normalise(IEnumerable<string> args) => args.Select(a => a.Replace("parent", "X", StringComparison.Ordinal)
            .Replace("child", "X", StringComparison.Ordinal).Replace("share=on", "share=?", StringComparison.Ordinal).Replace("share=off", "share=?", StringComparison.Ordinal));
        Assert.Equal(Normalise(parent), Normalise(child).Take(parent.Count));
    }

    [Fact]
    public void Kernel_arguments_put_ours_first_with_the_host_tsc_rate()
    {
        Assert.Equal("console=ttyS0 panic=-1 quiet nowatchdog sysctl.vm.compaction_proactiveness=0 psi=0 tsc_early_khz=2445434 tsc=reliable rdinit=/init", Machine.Append);
        Assert.Equal("console=ttyS0 panic=-1 quiet nowatchdog sysctl.vm.compaction_proactiveness=0 psi=0", QemuCommandLine.KernelArguments(0, " "));
    }

    [Fact]
    public void Recorded_config_resolves_relative_kernel_names_against_the_snapshot_dir()
    {
        var json = (Machine with { KernelPath = "vmlinux", InitramfsPath = "initramfs.img", Accelerator = Accelerator.Kvm }).ToJson();
        var back = QemuMachineConfig.FromJson(JsonNode.Parse(json.ToJsonString())!.AsObject(), "/data/snapshots/py");
        Assert.Equal("/data/snapshots/py/vmlinux", back.KernelPath);
        Assert.Equal("/data/snapshots/py/initramfs.img", back.InitramfsPath);
        Assert.Equal(Accelerator.Kvm, back.Accelerator);
        Assert.Equal("host", back.Cpu);
        Assert.Equal(Machine.Append, back.Append);
    }

    [Fact]
    public void A_config_without_a_kernel_is_invalid_data()
    {
        var ex = Assert.Throws<ForkdException>(() => QemuMachineConfig.FromJson(new JsonObject { ["machine"] = "microvm" }, "/x"));
        Assert.Equal("SnapshotMetadataInvalid", ex.ErrorId);
    }
}
