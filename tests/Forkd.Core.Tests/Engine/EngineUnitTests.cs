using System.Collections.Specialized;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Engine;

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
        Assert.Equal("console=ttyS0 panic=-1 quiet tsc_early_khz=2445434 tsc=reliable rdinit=/init", Machine.Append);
        Assert.Equal("console=ttyS0 panic=-1 quiet", QemuCommandLine.KernelArguments(0, " "));
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

public sealed class GuestValueTests
{
    [Fact]
    public void Scalars_decode_to_native_types()
    {
        Assert.Equal(42L, Assert.IsType<long>(GuestValue.Decode("42")));
        Assert.Equal(2.5, Assert.IsType<double>(GuestValue.Decode("2.5")));
        Assert.Equal("a\"b", GuestValue.Decode("\"a\\\"b\""));
        Assert.Equal(true, GuestValue.Decode("true"));
        Assert.Null(GuestValue.Decode("null"));
    }

    [Fact]
    public void Sentinels_and_bare_literals_become_non_finite_doubles_but_strings_that_mention_them_stay()
    {
        Assert.True(double.IsNaN((double)GuestValue.Decode("\"__js_NaN__\"")!));
        Assert.Equal(double.PositiveInfinity, GuestValue.Decode("\"__js_Infinity__\""));
        Assert.Equal(double.NegativeInfinity, GuestValue.Decode("\"__js_-Infinity__\""));
        var array = (object?[])GuestValue.Decode("[NaN, -Infinity, \"NaN is a word\"]")!;
        Assert.True(double.IsNaN((double)array[0]!));
        Assert.Equal(double.NegativeInfinity, array[1]);
        Assert.Equal("NaN is a word", array[2]);
    }

    [Fact]
    public void Objects_keep_key_order_and_nest()
    {
        var d = (OrderedDictionary)GuestValue.Decode("{\"b\": 1, \"a\": [1, {\"c\": null}]}")!;
        Assert.Equal(["b", "a"], d.Keys.Cast<string>());
        var inner = (OrderedDictionary)((object?[])d["a"]!)[1]!;
        Assert.True(inner.Contains("c"));
    }

    [Fact]
    public void Text_that_is_not_json_is_returned_as_is()
    {
        Assert.Equal("<object at 0x1>", GuestValue.Decode("<object at 0x1>"));
    }
}

public sealed class TagLockSharingTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-locktest-").FullName;

    public void Dispose() => Directory.Delete(_root, true);

    private ForkdPaths Paths => new(_root, _root);

    [Fact]
    public void Forks_share_a_tag_but_exclude_snapshot_writers_both_ways()
    {
        using (TagLock.AcquireShared(Paths, "py", "fork 1"))
        using (TagLock.AcquireShared(Paths, "py", "fork 2"))
        {
            var ex = Assert.Throws<ForkdException>(() => TagLock.Acquire(Paths, "py", "New-ForkdSnapshot"));
            Assert.Equal("TagInUse", ex.ErrorId);
            using var other = TagLock.Acquire(Paths, "other", "New-ForkdSnapshot"); // other tags are free
        }

        using (TagLock.Acquire(Paths, "py", "New-ForkdSnapshot"))
        {
            var ex = Assert.Throws<ForkdException>(() => TagLock.AcquireShared(Paths, "py", "Invoke-ForkdFork"));
            Assert.Equal("TagInUse", ex.ErrorId);
            Assert.Contains("New-ForkdSnapshot", ex.Message, StringComparison.Ordinal);
        }

        using var again = TagLock.Acquire(Paths, "py", "after");
    }
}

public sealed class ProcessMemoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-memtest-").FullName;

    public void Dispose() => Directory.Delete(_root, true);

    [Fact]
    public void Guest_ram_mapping_and_whole_process_are_reported_separately()
    {
        var dir = Directory.CreateDirectory(Path.Combine(_root, "77")).FullName;
        File.WriteAllText(Path.Combine(dir, "smaps"), """
            55d0c0000000-55d0c0100000 r-xp 00000000 fd:01 11 /usr/bin/qemu-system-x86_64
            Rss:                 900 kB
            Pss:                 300 kB
            Private_Clean:         0 kB
            Private_Dirty:         0 kB
            7f0000000000-7f0010000000 rw-p 00000000 fd:01 22 /data/snapshots/py/memory.bin
            Size:             262144 kB
            Rss:               40000 kB
            Pss:               10000 kB
            Shared_Clean:      39000 kB
            Private_Clean:       100 kB
            Private_Dirty:       764 kB
            7f0020000000-7f0021000000 rw-p 00000000 00:00 0
            Rss:               18000 kB
            Private_Dirty:     18000 kB
            """);
        File.WriteAllText(Path.Combine(dir, "smaps_rollup"), """
            55d0c0000000-7ffc00000000 ---p 00000000 00:00 0 [rollup]
            Rss:               58900 kB
            Pss:               28300 kB
            Private_Clean:       100 kB
            Private_Dirty:     18764 kB
            """);
        var m = ProcessMemory.Measure(77, "/data/snapshots/py/memory.bin", _root);
        Assert.Equal(864L * 1024, m.GuestRamPrivateBytes);
        Assert.Equal(10000L * 1024, m.GuestRamPssBytes);
        Assert.Equal(40000L * 1024, m.GuestRamRssBytes);
        Assert.Equal(18864L * 1024, m.ProcessPrivateBytes);
        Assert.Equal(28300L * 1024, m.ProcessPssBytes);
    }
}
