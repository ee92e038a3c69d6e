using Forkd.Core.Store;
using Forkd.Core.Host;

namespace Forkd.Core.Engine;

/// <summary>Ends a child and removes everything it had: VMM process, sockets and work dir, cgroup leaf, registry record.</summary>
public static class ChildStopper
{
    public static async Task StopAsync(ChildRegistry registry, ForkdChild child)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(child);
        // Only signal the pid while it is provably still this child's VMM (pid reuse).
        if (registry.IsOurProcess(child.ProcessId, child.WorkDirectory))
        {
            await ProcessControl.KillAndWaitAsync(child.ProcessId, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }

        if (child.CgroupPath is not null)
        {
            Cgroups.TryRemove(child.CgroupPath);
        }

        SafeDelete.Delete(child.WorkDirectory);
        registry.Delete(child.Id);
    }
}
