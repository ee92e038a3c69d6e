namespace Forkd.Core.Host;

public enum HostCheckStatus
{
    Pass,
    Warn,
    Fail,
}

/// <summary>One finding of <c>Test-ForkdHost</c>: what was looked at, what was seen, and how to fix it.</summary>
/// <param name="Name">Stable check name (Kvm, Qemu, Firecracker, Cgroups, NetworkNamespaces, VhostVsock, Ksm, HugePages, Memory, Disk).</param>
/// <param name="Observed">What the check saw on this host.</param>
/// <param name="Fix">What to do about a Warn or Fail; null when there is nothing to do.</param>
public sealed record HostCheckResult(string Name, HostCheckStatus Status, string Observed, string? Fix = null);
