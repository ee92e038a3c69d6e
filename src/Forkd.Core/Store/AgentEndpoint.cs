using System.Text.Json.Serialization;

namespace Forkd.Core.Store;

/// <summary>How the host reaches a guest agent.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AgentTransport>))]
public enum AgentTransport
{
    /// <summary>A Unix socket the VMM serves (QEMU's virtio-serial chardev).</summary>
    [JsonStringEnumMemberName("unix")]
    Unix,

    /// <summary>Firecracker's hybrid vsock: a Unix socket plus <c>CONNECT port</c>.</summary>
    [JsonStringEnumMemberName("vsock")]
    Vsock,

    /// <summary>TCP over the child's own network, entered through its namespace.</summary>
    [JsonStringEnumMemberName("tcp")]
    Tcp,
}

/// <summary>Where the guest agent listens, as seen from the host (recorded in the child registry).</summary>
/// <param name="Transport">How to connect.</param>
/// <param name="Address">Socket path, or IP address for tcp.</param>
/// <param name="Port">vsock or TCP port; null for unix.</param>
/// <param name="NetworkNamespace">Namespace to enter before connecting (tcp only), or null.</param>
public sealed record AgentEndpoint(AgentTransport Transport, string Address, int? Port = null, string? NetworkNamespace = null)
{
    /// <summary>forkd's agent port, on vsock and TCP alike.</summary>
    public const int DefaultPort = 8888;

    public override string ToString()
    {
        var transport = Transport.ToString().ToLowerInvariant();
        return Port is null ? $"{transport}:{Address}" : $"{transport}:{Address}:{Port}";
    }
}
