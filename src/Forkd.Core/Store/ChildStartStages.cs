using System.Text.Json.Serialization;

namespace Forkd.Core.Store;

/// <summary>
/// Where a child's start went, stage by stage (Invoke-ForkdFork records it; bench/fork.bench.ps1 charts it).
/// A stage the backend does not report is null. Together the stages add up to <see cref="ForkdChild.Ready"/>.
/// </summary>
public sealed record ChildStartStages
{
    /// <summary>The VMM process started until its control socket listened (QEMU: the launcher's exit after -daemonize).</summary>
    [JsonPropertyName("vmm_start")]
    public TimeSpan? VmmStart { get; init; }

    /// <summary>Connecting to the VMM's control channel (QMP greeting and capabilities).</summary>
    [JsonPropertyName("control_connect")]
    public TimeSpan? ControlConnect { get; init; }

    /// <summary>Loading the saved device state (guest RAM is mapped, not copied).</summary>
    [JsonPropertyName("state_load")]
    public TimeSpan? StateLoad { get; init; }

    /// <summary>Resuming the vCPUs.</summary>
    [JsonPropertyName("resume")]
    public TimeSpan? Resume { get; init; }

    /// <summary>From resume to the agent's first reply (the guest's own work, translated afresh under TCG).</summary>
    [JsonPropertyName("agent_ready")]
    public TimeSpan? AgentReady { get; init; }

    /// <summary>The engine's own work on the way: work dir, registry records, OOM score, cgroup.</summary>
    [JsonPropertyName("engine")]
    public TimeSpan? Engine { get; init; }
}
