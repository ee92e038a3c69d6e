using Prometheus;

namespace Forkd.Service.Hosting;

/// <summary>
/// forkd's metrics (spec 5.5, 10.4) plus fork/agent counters and latency histograms, through prometheus-net.
/// Each host has its own registry, so two controllers in one process (tests) never share counters.
/// </summary>
public sealed class ServiceMetrics
{
    private readonly Counter _forks;
    private readonly Counter _children;
    private readonly Histogram _forkSeconds;
    private readonly Counter _agentCalls;

    public ServiceMetrics(ServiceEngine engine, int branchConcurrencyCap = 4)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        var snapshots = factory.CreateGauge("forkd_snapshots_total", "Number of snapshots known to the controller.");
        var active = factory.CreateGauge("forkd_sandboxes_active", "Number of active sandboxes (child VMs).");
        factory.CreateGauge("forkd_build_info", "Build version of the controller binary.", "version").WithLabels(Api.RestRoutes.Version).Set(1);
        factory.CreateGauge("forkd_branches_in_flight", "BRANCH operations in flight (branch is not implemented: always 0).");
        factory.CreateGauge("forkd_branch_concurrency_cap", "Most BRANCH operations allowed at once.").Set(branchConcurrencyCap);
        _forks = factory.CreateCounter("forkd_fork_requests_total", "Fork requests handled, by result.", "result");
        _children = factory.CreateCounter("forkd_children_forked_total", "Children started by fork requests.");
        _forkSeconds = factory.CreateHistogram("forkd_fork_duration_seconds", "Time to fork a request's children until their agents reply.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.025, 2, 12) });
        _agentCalls = factory.CreateCounter("forkd_agent_calls_total", "exec/eval calls answered by a guest agent, by action and result.", "action", "result");
        // Counted from the shared store and registry at scrape time, so cmdlet-made snapshots and children count too.
        Registry.AddBeforeCollectCallback(() =>
        {
            snapshots.Set(engine.ListSnapshots().Count);
            active.Set(engine.RunningChildCount());
        });
    }

    public CollectorRegistry Registry { get; }

    public void Forked(int count, TimeSpan elapsed, bool succeeded)
    {
        _forks.WithLabels(succeeded ? "ok" : "error").Inc();
        if (succeeded)
        {
            _children.Inc(count);
            _forkSeconds.Observe(elapsed.TotalSeconds);
        }
    }

    public void AgentCall(string action, bool succeeded) => _agentCalls.WithLabels(action, succeeded ? "ok" : "error").Inc();
}
