using System.Collections.Specialized;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Host;

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
