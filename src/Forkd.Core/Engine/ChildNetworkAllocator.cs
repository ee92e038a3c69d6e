using Forkd.Core.Store;
using System.Text.Json.Nodes;
using Forkd.Core.Host;

namespace Forkd.Core.Engine;

/// <summary>
/// Picks the network namespaces for <c>Invoke-ForkdFork -Network</c>: the lowest-numbered
/// <c>forkd-child-&lt;i&gt;</c> namespaces that exist and that no running child uses. (forkd 0.1.3 always
/// took 1..n, so two concurrent forks fought over the same taps.)
/// </summary>
public static class ChildNetworkAllocator
{
    private static readonly object Gate = new();

    /// <summary>
    /// Serialises networked forks across processes: a namespace counts as used only once its child is
    /// registered, so the caller holds this from <see cref="Reserve"/> until its children are registered.
    /// Waits (cancellably) while another process's networked fork holds it.
    /// </summary>
    public static async Task<IDisposable> LockAsync(Store.ForkdPaths paths, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(paths);
        Directory.CreateDirectory(paths.LocksDirectory);
        var file = Path.Combine(paths.LocksDirectory, "child-networks.lock");
        while (true)
        {
            try
            {
                return new FileStream(file, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public static IReadOnlyList<string> Reserve(ChildRegistry registry, JsonObject backendConfig, int count, string tag)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(backendConfig);
        if (backendConfig["nic_mac"] is null && backendConfig["nic"] is null)
        {
            throw new ForkdException("SnapshotHasNoNetwork", ForkdErrorKind.InvalidArgument,
                $"snapshot '{tag}' was made without a network card, so its children cannot be given a network", tag)
            {
                Hint = $"Make the snapshot with New-ForkdSnapshot -Tag {tag} -Network (children then each get their own namespace).",
            };
        }

        lock (Gate)
        {
            var used = registry.List().Where(c => c.IsAlive && c.NetworkNamespace is not null)
                .Select(c => c.NetworkNamespace!).ToHashSet();
            var existing = ChildNetworks.ListNamespaces().Where(ChildNetworks.IsOurNamespace).ToList();
            var free = existing.Where(n => !used.Contains(n)).OrderBy(ChildNetworks.IndexOf).Take(count).ToList();
            if (free.Count < count)
            {
                var highest = existing.Count == 0 ? 0 : existing.Max(ChildNetworks.IndexOf);
                throw new ForkdException("NotEnoughChildNetworks", ForkdErrorKind.NotFound,
                    $"{count} child network(s) needed, {free.Count} free ({existing.Count} exist, {used.Count} in use by running children)", tag)
                {
                    Hint = $"Initialize-ForkdNetwork -Count {highest + count - free.Count}",
                };
            }

            return free;
        }
    }
}
