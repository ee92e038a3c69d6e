using Forkd.Core.Store;
using System.Text.Json.Nodes;

namespace Forkd.Core.Vmm.Firecracker;

/// <summary>One running Firecracker process and its API connection.</summary>
public sealed class FirecrackerVm : IVmHandle
{
    private readonly DetachedVmmProcess _process;
    private bool _detached;

    internal FirecrackerVm(string name, string workDirectory, DetachedVmmProcess process, FirecrackerApiClient api, JsonObject config, string? netns)
    {
        Name = name;
        WorkDirectory = workDirectory;
        _process = process;
        Api = api;
        BackendConfig = config;
        if (config["agent"] is JsonObject { } tcp && (string?)tcp["transport"] == "tcp")
        {
            // forkd's guests: no vsock, the agent listens on the guest's network (inside the child's namespace, if any).
            Agent = new AgentEndpoint(AgentTransport.Tcp, (string)tcp["address"]!, (int?)tcp["port"] ?? ForkdSnapshotLayout.ForkdAgentPort, netns);
            return;
        }

        var port = (int?)config["agentVsockPort"] ?? FirecrackerBackend.AgentVsockPort;
        Agent = new AgentEndpoint(AgentTransport.Vsock, Path.Combine(workDirectory, FirecrackerBackend.VsockSocketName), port);
    }

    public string Name { get; }

    public int ProcessId => _process.ProcessId;

    public string WorkDirectory { get; }

    public AgentEndpoint Agent { get; }

    public JsonObject BackendConfig { get; }

    public FirecrackerApiClient Api { get; }

    /// <summary>A private network namespace made for this VM alone (a networked parent), deleted with it.</summary>
    internal string? OwnedNamespace { get; set; }

    public Task PauseAsync(CancellationToken cancellationToken) => Api.PauseAsync(cancellationToken);

    public Task ResumeAsync(CancellationToken cancellationToken) => Api.ResumeAsync(cancellationToken);

    /// <summary>Full snapshot of a paused VM; writable disks are cloned beside the vmstate so children start from the same disk state.</summary>
    public async Task SaveAsync(VmSnapshotFiles files, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        var vmstate = Path.GetFullPath(files.VmStatePath);
        var snapshotDir = Path.GetDirectoryName(vmstate)!;
        Directory.CreateDirectory(snapshotDir);
        await Api.CreateSnapshotAsync(new FcSnapshotCreate(vmstate, Path.GetFullPath(files.MemoryPath)), cancellationToken).ConfigureAwait(false);
        var drives = FirecrackerDrives.FromJson(BackendConfig["drives"] as JsonArray);
        BackendConfig["drives"] = FirecrackerDrives.ToJson(FirecrackerDrives.SaveWritable(drives, WorkDirectory, snapshotDir));
    }

    public async Task KillAsync()
    {
        Api.Dispose();
        await _process.KillAsync().ConfigureAwait(false);
        if (Directory.Exists(WorkDirectory))
        {
            File.Delete(Api.SocketPath);
        }

        if (OwnedNamespace is not null)
        {
            Host.ChildNetworks.DeleteBootNamespace(OwnedNamespace);
            OwnedNamespace = null;
        }
    }

    public void Detach()
    {
        _detached = true;
        Api.Dispose();
    }

    /// <summary>Kills the VM unless it was detached: a handle dropped on an error path leaves no VMM behind.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_detached)
        {
            await KillAsync().ConfigureAwait(false);
        }

        _process.Dispose();
    }
}
