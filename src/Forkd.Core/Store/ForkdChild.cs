using System.Text.Json.Serialization;
using Forkd.Core.Vmm;

namespace Forkd.Core.Store;

public enum ChildState
{
    Running,
    Exited,

    /// <summary>
    /// A VMM of ours that no registry record knows (its forker was killed before recording it): found by
    /// scanning the process table; Stop-ForkdChild and Remove-ForkdStaleWorkDir end it.
    /// </summary>
    Orphaned,

    /// <summary>Alive but stopped (Suspend-ForkdChild, or a checkpoint in progress); Resume-ForkdChild continues it.</summary>
    Paused,
}

/// <summary>
/// One forked child as the registry records it (<c>&lt;data&gt;/children/&lt;id&gt;.json</c>). <see cref="State"/> is
/// not stored: it is worked out from the process table each time the record is read.
/// </summary>
public sealed record ForkdChild
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("tag")]
    public required string Tag { get; init; }

    [JsonPropertyName("index")]
    public int Index { get; init; }

    [JsonPropertyName("pid")]
    public int ProcessId { get; init; }

    /// <summary>The hypervisor running the child (the snapshot's); recorded as <c>qemu</c> or <c>firecracker</c>.</summary>
    [JsonPropertyName("backend")]
    [JsonConverter(typeof(LowerCaseEnumConverter<BackendKind>))]
    public BackendKind Backend { get; init; } = BackendKind.Qemu;

    /// <summary>How the child's guest code runs (the snapshot's); recorded as <c>kvm</c> or <c>tcg</c>.</summary>
    [JsonPropertyName("accelerator")]
    [JsonConverter(typeof(LowerCaseEnumConverter<Accelerator>))]
    public Accelerator Accelerator { get; init; } = Accelerator.Tcg;

    [JsonPropertyName("agent")]
    public required AgentEndpoint Agent { get; init; }

    /// <summary>From VMM start to the guest running again (device state loaded, resumed), in ms.</summary>
    [JsonPropertyName("restore_ms")]
    public double RestoreTime { get; init; }

    /// <summary>From VMM start to the first agent reply, in ms.</summary>
    [JsonPropertyName("ready_ms")]
    public double ReadyTime { get; init; }

    /// <summary><see cref="RestoreTime"/> as a TimeSpan; null when it was not measured (records of older versions).</summary>
    [JsonIgnore]
    public TimeSpan? Restore => RestoreTime > 0 ? TimeSpan.FromMilliseconds(RestoreTime) : null;

    /// <summary><see cref="ReadyTime"/> as a TimeSpan; null when it was not measured.</summary>
    [JsonIgnore]
    public TimeSpan? Ready => ReadyTime > 0 ? TimeSpan.FromMilliseconds(ReadyTime) : null;

    /// <summary>Where the start went, stage by stage; null in records of older versions.</summary>
    [JsonPropertyName("start_stages")]
    public ChildStartStages? StartStages { get; init; }

    [JsonPropertyName("work_dir")]
    public required string WorkDirectory { get; init; }

    [JsonPropertyName("snapshot_dir")]
    public string? SnapshotDirectory { get; init; }

    [JsonPropertyName("memory_file")]
    public string? MemoryFile { get; init; }

    [JsonPropertyName("cgroup")]
    public string? CgroupPath { get; init; }

    [JsonPropertyName("memory_limit_mib")]
    public long? MemoryLimitMiB { get; init; }

    /// <summary>The child's own network namespace (<c>Invoke-ForkdFork -Network</c>), or null.</summary>
    [JsonPropertyName("netns")]
    public string? NetworkNamespace { get; init; }

    /// <summary>The agent over the guest's network (10.42.0.2:8888 inside <see cref="NetworkNamespace"/>), or null.</summary>
    [JsonPropertyName("network_agent")]
    public AgentEndpoint? NetworkAgent { get; init; }

    /// <summary>
    /// The VMM's start time in clock ticks since boot (<c>/proc/&lt;pid&gt;/stat</c> field 22), recorded when the
    /// record is first saved. With <see cref="ProcessId"/> it proves a later process is the same one.
    /// </summary>
    [JsonPropertyName("pid_start_ticks")]
    public long? ProcessStartTicks { get; init; }

    /// <summary>The VMM executable (<c>/proc/&lt;pid&gt;/exe</c>) when the record was first saved.</summary>
    [JsonPropertyName("executable")]
    public string? Executable { get; init; }

    /// <summary>The agent generation the child answered with when it was forked (the snapshot's); another one later means its warm state is gone.</summary>
    [JsonPropertyName("agent_generation")]
    public string? AgentGeneration { get; init; }

    [JsonPropertyName("started_at")]
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Set by Suspend-ForkdChild, cleared by Resume-ForkdChild; read as <see cref="ChildState.Paused"/> while the VMM lives.</summary>
    [JsonPropertyName("paused")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Paused { get; init; }

    [JsonIgnore]
    public ChildState State { get; init; } = ChildState.Running;

    /// <summary>The VMM process is alive (running or paused): it maps its snapshot's memory.</summary>
    [JsonIgnore]
    public bool IsAlive => State is ChildState.Running or ChildState.Paused or ChildState.Orphaned;

    public override string ToString() => Id;
}
