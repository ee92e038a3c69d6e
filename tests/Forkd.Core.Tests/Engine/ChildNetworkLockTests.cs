using Forkd.Core.Engine;
using Forkd.Core.Store;

namespace Forkd.Core.Tests.Engine;

public sealed class ChildNetworkLockTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_second_networked_fork_waits_until_the_first_has_registered_its_children()
    {
        var paths = new ForkdPaths(_dir.Sub("data"), _dir.Sub("tmp"));
        var first = await ChildNetworkAllocator.LockAsync(paths, CancellationToken.None);

        using (var shortWait = new CancellationTokenSource(TimeSpan.FromMilliseconds(300)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ChildNetworkAllocator.LockAsync(paths, shortWait.Token));
        }

        var waiting = ChildNetworkAllocator.LockAsync(paths, CancellationToken.None);
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);
        first.Dispose();
        using var second = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(second);
    }
}
