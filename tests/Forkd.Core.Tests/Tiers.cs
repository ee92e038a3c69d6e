namespace Forkd.Core.Tests;

/// <summary>
/// Test tiers: <c>build.ps1 Test -Fast</c> runs everything not marked <see cref="Full"/> (no VMs, no downloads);
/// the full tier, which CI runs, runs all of it.
/// </summary>
public static class Tiers
{
    public const string Name = "Tier";

    /// <summary>Boots QEMU, builds guest images or root disks from Debian packages, or needs a real hypervisor.</summary>
    public const string Full = "Full";
}
