using System.Collections.Specialized;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Store;

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
