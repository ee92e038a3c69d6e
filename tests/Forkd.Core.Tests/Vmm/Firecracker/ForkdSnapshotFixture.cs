using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// A snapshot directory as forkd 0.1.3 writes it (spec 1.5, 1.6, 2.2, 2.3): <c>vmstate</c>, a sparse
/// <c>memory.bin</c> of the guest's RAM size, and a pretty-printed <c>snapshot.json</c> with only
/// <c>vmstate</c>, <c>memory</c> and <c>volumes</c>, holding the packing host's absolute paths.
/// The vmstate is laid out like Firecracker's (bincode, fixed-width little-endian; strings are a u64
/// length and bytes): a header, vCPU-like filler, one block-device state per drive
/// (<c>id, partuuid: None, cache_type, root_device, disk_path</c>, then virtio filler), the net device
/// (<c>id "eth0", tap_if_name</c>) and a trailing CRC-like word.
/// </summary>
internal sealed class ForkdSnapshotFixture
{
    public ForkdSnapshotFixture(string snapshotDirectory, string rootfsPath, IReadOnlyList<string> volumePaths, string? tap = "forkd-tap0", int memoryMiB = 512,
        bool volumesReadOnly = false, bool rootfsReadOnly = true)
    {
        Directory = snapshotDirectory;
        RootfsPath = rootfsPath;
        VolumePaths = volumePaths;
        System.IO.Directory.CreateDirectory(snapshotDirectory);
        File.WriteAllBytes(Path.Combine(snapshotDirectory, "vmstate"), VmState(rootfsPath, volumePaths, tap, rootfsReadOnly, volumesReadOnly));
        using (var memory = File.Create(Path.Combine(snapshotDirectory, "memory.bin")))
        {
            memory.SetLength((long)memoryMiB << 20);
        }

        var volumes = new JsonArray();
        for (var i = 0; i < volumePaths.Count; i++)
        {
            volumes.Add(new JsonObject { ["host_path"] = volumePaths[i], ["guest_path"] = $"/opt/v{i}", ["read_only"] = volumesReadOnly });
        }

        // The packing host's paths, as forkd writes them (another user, another data dir).
        var json = new JsonObject
        {
            ["vmstate"] = "/home/u/.local/share/forkd/snapshots/pyagent/vmstate",
            ["memory"] = "/home/u/.local/share/forkd/snapshots/pyagent/memory.bin",
            ["volumes"] = volumes,
        };
        File.WriteAllText(Path.Combine(snapshotDirectory, "snapshot.json"), json.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, IndentSize = 2 }));
    }

    public string Directory { get; }

    public string RootfsPath { get; }

    public IReadOnlyList<string> VolumePaths { get; }

    /// <summary>What the stand-in Firecracker reopens on load, from what this fixture wrote (not by parsing it).</summary>
    public JsonObject SavedState()
    {
        var drives = new JsonObject { ["rootfs"] = RootfsPath };
        for (var i = 0; i < VolumePaths.Count; i++)
        {
            drives[$"vol{i}"] = VolumePaths[i];
        }

        return new JsonObject { ["drives"] = drives, ["vsock"] = null };
    }

    /// <param name="featureBits">False: filler instead of the virtio state (feature bits that cannot be read).</param>
    public static byte[] VmState(string rootfsPath, IReadOnlyList<string> volumePaths, string? tap, bool rootfsReadOnly = true, bool volumesReadOnly = false,
        bool featureBits = true)
    {
        var s = new MemoryStream();
        U64(s, 0x0710_1984_8664_0000UL); // magic-like header word
        U64(s, 1);
        U64(s, 10);
        U64(s, 0);                        // version 1.10.0
        Filler(s, 3000, seed: 1);         // vCPU registers, MSRs, ...
        Block(s, "rootfs", rootfsPath, isRoot: true, featureBits ? rootfsReadOnly : null);
        for (var i = 0; i < volumePaths.Count; i++)
        {
            Block(s, $"vol{i}", volumePaths[i], isRoot: false, featureBits ? volumesReadOnly : null);
        }

        if (tap is not null)
        {
            Str(s, "eth0");
            Str(s, tap);
            Filler(s, 400, seed: 3);
        }

        U64(s, 0xdead_beef_cafe_f00dUL); // crc64-like trailer
        return s.ToArray();
    }

    private static void Block(MemoryStream s, string id, string path, bool isRoot, bool? readOnly)
    {
        Str(s, id);
        s.WriteByte(0);                   // partuuid: None
        U32(s, 0);                        // cache_type: Unsafe
        s.WriteByte(isRoot ? (byte)1 : (byte)0);
        Str(s, path);
        if (readOnly is { } ro)
        {
            U32(s, 2);                    // virtio_state.device_type: TYPE_BLOCK
            var features = (1UL << 32) | (1UL << 29) | (1UL << 9) | (ro ? 1UL << 5 : 0); // VERSION_1, EVENT_IDX, FLUSH, RO
            U64(s, features);             // avail_features
            U64(s, features);             // acked_features
        }
        else
        {
            U32(s, 0x77777777);           // something that is not a block device type or feature word
            U64(s, 0);
        }

        Filler(s, 600, seed: id.Length);  // queues, rate limiter, ...
    }

    private static void Str(MemoryStream s, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        U64(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void U64(MemoryStream s, ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        s.Write(b);
    }

    private static void U32(MemoryStream s, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        s.Write(b);
    }

    private static void Filler(MemoryStream s, int count, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[count];
        random.NextBytes(bytes);
        s.Write(bytes);
    }
}

/// <summary>
/// forkd's guest agent as its clients see it (spec 3.2): plain TCP, one request line per connection,
/// one reply line (Python's json.dumps separators), then the connection is closed.
/// </summary>
internal sealed class ForkdTcpAgentStandIn : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public ForkdTcpAgentStandIn()
    {
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    public int Connections;

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref Connections);
            _ = Task.Run(async () =>
            {
                using var c = client;
                var stream = c.GetStream();
                using var reader = new StreamReader(stream, Encoding.UTF8);
                var line = await reader.ReadLineAsync(_stop.Token);
                if (string.IsNullOrEmpty(line))
                {
                    return;
                }

                var request = JsonNode.Parse(line)!.AsObject();
                var reply = (string?)request["action"] switch
                {
                    "ping" => "{\"pong\": true, \"numpy_version\": \"not-installed\", \"pid\": 1, \"agent_lang\": \"python\", \"warmup_ready\": true}",
                    "eval" => "{\"result\": \"2\", \"exit_code\": 0}",
                    _ => "{\"error\": \"unknown action\", \"exit_code\": 2}",
                };
                await stream.WriteAsync(Encoding.UTF8.GetBytes(reply + "\n"), _stop.Token);
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }
}
