using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>One request as the server saw it.</summary>
public sealed record RecordedRequest(string Method, string Path, string? OperationId, JsonNode? Body)
{
    public override string ToString() => $"{Method} {Path}";
}

/// <summary>
/// Stands in for one Firecracker process: serves HTTP/1.1 on a real Unix socket and judges every
/// request against the published description (<see cref="FirecrackerApiDescription"/>) and the
/// call-order rules from Firecracker's docs (pre-boot-only resources, snapshot/load only on a fresh
/// process, snapshot/create only while paused, the same relative paths after load). A request that
/// breaks a rule is answered the way Firecracker answers — 400 with <c>fault_message</c> — and is
/// recorded in <see cref="Violations"/>. It also plays the hybrid vsock device: after start or
/// load it listens on the configured <c>uds_path</c> and answers <c>CONNECT port</c>.
/// This HTTP parsing is test scaffolding only; the product's client is .NET's HttpClient.
/// </summary>
public sealed partial class FakeFirecrackerServer : IAsyncDisposable
{
    private static readonly string[] PreBootOnly =
    [
        "putGuestBootSource", "putGuestDriveByID", "putMachineConfiguration", "patchMachineConfiguration",
        "putGuestNetworkInterfaceByID", "putGuestVsock", "putEntropyDevice", "putCpuConfiguration", "putBalloon",
        "putMmdsConfig", "putSerialDevice", "putGuestPmemByID", "putMemoryHotplug",
    ];

    private readonly FirecrackerApiDescription _api;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _tasks = [];
    private readonly Dictionary<string, string> _drives = []; // id -> path_on_host as given
    private Socket? _vsockListener;
    private string? _vsockPath;
    private bool _bootSource;
    private State _state = State.Fresh;

    private bool _trackDirtyPages;

    private enum State
    {
        Fresh,
        Configured,
        Running,
        Paused,
    }

    public FakeFirecrackerServer(string apiSocket, string workingDirectory, FirecrackerApiDescription api)
    {
        ApiSocket = apiSocket;
        WorkingDirectory = workingDirectory;
        _api = api;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(apiSocket));
        _listener.Listen(16);
        _tasks.Add(Task.Run(AcceptLoopAsync));
    }

    public string ApiSocket { get; }

    /// <summary>The fake process's working directory: relative paths in requests resolve against it.</summary>
    public string WorkingDirectory { get; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public ConcurrentQueue<string> Violations { get; } = new();

    /// <summary>Answers to force: "METHOD /path" → fault_message, sent with 400 after validation.</summary>
    public ConcurrentDictionary<string, string> Faults { get; } = new();

    /// <summary>vsock ports a guest process listens on.</summary>
    public HashSet<int> GuestVsockPorts { get; } = [8888];

    public bool LoadedFromSnapshot { get; private set; }

    /// <summary>
    /// For state files this stand-in did not write (a forkd-made vmstate): what they name, as
    /// <c>{"drives": {id: path_on_host}, "vsock": uds_path|null}</c>; null falls back to the stand-in's own format.
    /// </summary>
    public Func<string, JsonObject?>? ReadSavedState { get; set; }

    public string StateName => _state.ToString();

    private string Handle(string method, string target, string bodyText, Dictionary<string, string> headers)
    {
        var path = target.Split('?')[0];
        var found = _api.Find(method, path);
        JsonNode? body = null;
        if (bodyText.Length > 0)
        {
            try
            {
                body = JsonNode.Parse(bodyText);
            }
            catch (JsonException ex)
            {
                Requests.Enqueue(new RecordedRequest(method, path, found?.Operation["operationId"]?.ToString(), null));
                return Fault(Violation($"{method} {path}: body is not JSON ({ex.Message})"));
            }
        }

        var opId = (string?)found?.Operation["operationId"];
        Requests.Enqueue(new RecordedRequest(method, path, opId, body));
        if (found is null)
        {
            return Fault(Violation($"{method} {path}: no such operation in the API description"));
        }

        var (_, operation, pathParameters) = found.Value;
        var schema = FirecrackerApiDescription.BodySchema(operation, out var bodyRequired);
        if (schema is null && body is not null)
        {
            return Fault(Violation($"{method} {path}: this operation takes no body"));
        }

        if (schema is not null)
        {
            if (body is null)
            {
                if (bodyRequired)
                {
                    return Fault(Violation($"{method} {path}: the body is required"));
                }
            }
            else
            {
                if (!headers.TryGetValue("content-type", out var type) || !type.StartsWith("application/json", StringComparison.Ordinal))
                {
                    return Fault(Violation($"{method} {path}: body without Content-Type application/json"));
                }

                var errors = _api.Validate(body, schema);
                if (errors.Count > 0)
                {
                    return Fault(Violation($"{method} {path}: " + string.Join("; ", errors)));
                }
            }
        }

        if (Faults.TryGetValue($"{method} {path}", out var forced))
        {
            return Fault(forced);
        }

        return Apply(opId!, method, path, pathParameters, body as JsonObject);
    }

    private string Apply(string opId, string method, string path, Dictionary<string, string> pathParameters, JsonObject? body)
    {
        if (PreBootOnly.Contains(opId))
        {
            if (_state is State.Running or State.Paused)
            {
                return Fault(Violation($"{method} {path}: pre-boot only, but the microVM is already {(LoadedFromSnapshot ? "loaded from a snapshot" : "started")}"));
            }

            _state = State.Configured;
        }

        if (opId is "putMachineConfiguration" or "patchMachineConfiguration" && body?["track_dirty_pages"] is JsonNode track)
        {
            _trackDirtyPages = (bool)track;
        }

        switch (opId)
        {
            case "putGuestBootSource":
                if (Missing((string)body!["kernel_image_path"]!) is { } k)
                {
                    return Fault(Violation($"{method} {path}: kernel {k} does not exist"));
                }

                if (body["initrd_path"] is JsonValue initrd && Missing((string)initrd!) is { } i)
                {
                    return Fault(Violation($"{method} {path}: initrd {i} does not exist"));
                }

                _bootSource = true;
                return NoContent;
            case "putGuestDriveByID":
                if ((string?)body!["drive_id"] != pathParameters["drive_id"])
                {
                    return Fault(Violation($"{method} {path}: drive_id in the body differs from the path"));
                }

                if (Missing((string)body["path_on_host"]!) is { } d)
                {
                    return Fault(Violation($"{method} {path}: drive file {d} does not exist"));
                }

                _drives[pathParameters["drive_id"]] = (string)body["path_on_host"]!;
                return NoContent;
            case "putGuestNetworkInterfaceByID":
                return (string?)body!["iface_id"] == pathParameters["iface_id"] ? NoContent
                    : Fault(Violation($"{method} {path}: iface_id in the body differs from the path"));
            case "putGuestVsock":
                _vsockPath = (string)body!["uds_path"]!;
                return NoContent;
            case "createSyncAction" when (string?)body!["action_type"] == "InstanceStart":
                if (_state is State.Running or State.Paused)
                {
                    return Fault(Violation($"{method} {path}: InstanceStart on a microVM that already runs"));
                }

                if (!_bootSource)
                {
                    return Fault(Violation($"{method} {path}: InstanceStart before PUT /boot-source"));
                }

                _state = State.Running;
                StartVsock();
                return NoContent;
            case "patchVm":
                if (_state is not (State.Running or State.Paused))
                {
                    return Fault(Violation($"{method} {path}: the microVM is not started"));
                }

                _state = (string?)body!["state"] == "Paused" ? State.Paused : State.Running;
                return NoContent;
            case "createSnapshot":
                if (_state != State.Paused)
                {
                    return Fault(Violation($"{method} {path}: the microVM must be Paused, it is {_state}"));
                }

                // Firecracker refuses a Diff snapshot of a microVM without dirty page tracking (machine-config or snapshot/load).
                var diffSnapshot = (string?)body!["snapshot_type"] == "Diff";
                if (diffSnapshot && !_trackDirtyPages)
                {
                    return Fault(Violation($"{method} {path}: a Diff snapshot needs dirty page tracking (track_dirty_pages) enabled"));
                }

                WriteSnapshot((string)body["snapshot_path"]!, (string)body["mem_file_path"]!, diffSnapshot);
                return NoContent;
            case "loadSnapshot":
                return Load(method, path, body!);
            case "patchGuestDriveByID":
                if (_state is not (State.Running or State.Paused))
                {
                    return Fault(Violation($"{method} {path}: post-boot only"));
                }

                return _drives.ContainsKey(pathParameters["drive_id"]) ? NoContent : Fault($"drive {pathParameters["drive_id"]} does not exist");
            case "describeInstance":
                var state = _state switch { State.Running => "Running", State.Paused => "Paused", _ => "Not started" };
                return Ok(new JsonObject { ["app_name"] = "Firecracker", ["id"] = "anonymous-instance", ["state"] = state, ["vmm_version"] = _api.Version });
            case "getFirecrackerVersion":
                return Ok(new JsonObject { ["firecracker_version"] = _api.Version });
            default:
                return NoContent;
        }
    }

    private string Load(string method, string path, JsonObject body)
    {
        if (_state != State.Fresh)
        {
            return Fault(Violation($"{method} {path}: loading a snapshot is allowed only on a fresh process, before any other configuration (state {_state})"));
        }

        if (body.ContainsKey("mem_file_path") == body.ContainsKey("mem_backend"))
        {
            return Fault(Violation($"{method} {path}: exactly one of mem_file_path and mem_backend must be given"));
        }

        var memory = (string?)body["mem_backend"]?["backend_path"] ?? (string)body["mem_file_path"]!;
        var snapshotPath = (string)body["snapshot_path"]!;
        if (Missing(snapshotPath) is { } s)
        {
            return Fault($"Load snapshot error: cannot open the microVM state file {s}");
        }

        if (Missing(memory) is { } m)
        {
            return Fault($"Load snapshot error: cannot open the memory file {m}");
        }

        // The saved device state names its host resources by the paths the parent was given.
        var saved = ReadSavedState?.Invoke(Resolve(snapshotPath)) ?? JsonNode.Parse(File.ReadAllText(Resolve(snapshotPath)))!.AsObject();
        foreach (var (id, drivePath) in saved["drives"]!.AsObject())
        {
            if (Missing((string)drivePath!) is { } d)
            {
                return Fault(Violation($"{method} {path}: drive '{id}' of the snapshot is at {d}, which does not exist for this process"));
            }

            _drives[id] = (string)drivePath!;
        }

        _vsockPath = (string?)saved["vsock"];
        _trackDirtyPages = (bool?)body["track_dirty_pages"] == true || (bool?)body["enable_diff_snapshots"] == true;
        LoadedFromSnapshot = true;
        _state = (bool?)body["resume_vm"] == true ? State.Running : State.Paused;
        StartVsock();
        return NoContent;
    }

    /// <summary>Writes a stand-in vmstate (what the real one would name: drives, vsock) and a memory file.</summary>
    private void WriteSnapshot(string snapshotPath, string memPath, bool diff = false)
    {
        var drives = new JsonObject();
        foreach (var (id, p) in _drives)
        {
            drives[id] = p;
        }

        File.WriteAllText(Resolve(snapshotPath), new JsonObject { ["drives"] = drives, ["vsock"] = _vsockPath }.ToJsonString());
        // A Diff memory file is sparse: here two 4 KiB pages, the second one dirty (written as 'D').
        using var memory = new FileStream(Resolve(memPath), FileMode.Create, FileAccess.Write);
        memory.SetLength(2 * 4096);
        memory.Position = diff ? 4096 : 0;
        memory.Write(Enumerable.Repeat(diff ? (byte)'D' : (byte)0, 4096).ToArray());
    }

    private void StartVsock()
    {
        if (_vsockPath is null || _vsockListener is not null)
        {
            return;
        }

        var full = Resolve(_vsockPath);
        File.Delete(full);
        _vsockListener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _vsockListener.Bind(new UnixDomainSocketEndPoint(full));
        _vsockListener.Listen(16);
        lock (_tasks)
        {
            _tasks.Add(Task.Run(VsockLoopAsync));
        }
    }

    private string Resolve(string path) => Path.IsPathRooted(path) ? path : Path.Combine(WorkingDirectory, path);

    private string? Missing(string path) => File.Exists(Resolve(path)) ? null : path;

    private string Violation(string what)
    {
        Violations.Enqueue(what);
        return what;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        _vsockListener?.Dispose();
        Task[] all;
        lock (_tasks)
        {
            all = [.. _tasks];
        }

        await Task.WhenAll(all.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
        foreach (var socket in new[] { ApiSocket, _vsockPath is null ? null : Resolve(_vsockPath) })
        {
            if (socket is not null && Directory.Exists(Path.GetDirectoryName(socket)))
            {
                File.Delete(socket); // the VM's work dir may be gone already
            }
        }

        _stop.Dispose();
    }
}
