using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Forkd.Core.Host;

/// <summary>One child's network: a namespace holding the guest's tap, a veth into the host bridge, and NAT.</summary>
public sealed record ChildNetwork(int Index, string Namespace, string TapName, IPAddress GuestAddress, IPAddress ChildAddress, string HostVeth);

/// <summary>Something forkd's network setup owns, as found on the host.</summary>
public sealed record ChildNetworkItem(string Kind, string Name);

/// <summary>
/// Per-child networks. Every child of a snapshot wakes up with the parent's MAC and IP
/// (10.42.0.2 behind gateway 10.42.0.1 on tap <c>forkd-tap0</c>), so each runs in its own network
/// namespace <c>forkd-child-&lt;i&gt;</c> holding a tap of that name. A veth pair joins the namespace to
/// the host bridge <c>forkd-br0</c> (10.43.0.1/16); inside, nftables SNATs the guest to the veth's
/// address, so children are told apart on the bridge. On the host, traffic from the bridge is
/// masqueraded to the uplink for egress. Creation is idempotent; removal touches only names that
/// match forkd's exactly.
/// </summary>
public static partial class ChildNetworks
{
    public const string NamespacePrefix = "forkd-child-";
    public const string Bridge = "forkd-br0";
    public const string Tap = "forkd-tap0";
    public const string NamespaceVeth = "veth0";
    public const string HostTable = "forkd";
    public const string NamespaceTable = "forkd-nat";
    public const int MaxIndex = 65023; // 10.43.255.254

    /// <summary>The guest agent's TCP port.</summary>
    public const int AgentPort = 8888;

    public static readonly IPAddress BridgeAddress = IPAddress.Parse("10.43.0.1");
    public static readonly IPAddress TapAddress = IPAddress.Parse("10.42.0.1");
    public static readonly IPAddress GuestAddress = IPAddress.Parse("10.42.0.2");

    /// <summary>The kernel argument that gives the guest its static address (no DHCP in the guest).</summary>
    public const string GuestKernelIpArgument = "ip=10.42.0.2::10.42.0.1:255.255.255.0::eth0:off";

    public static string NamespaceName(int index) => NamespacePrefix + index.ToString(CultureInfo.InvariantCulture);

    public static string HostVethName(int index) => "forkd-v-" + index.ToString(CultureInfo.InvariantCulture) + "h";

    /// <summary>
    /// Child i's address on the bridge: 10.43.(i / 254).(i % 254 + 1), so the last octet is always
    /// 1–254. forkd 0.1.3 used 10.43.0.(i+1), which breaks from child 254 on (10.43.0.255 is the broadcast).
    /// </summary>
    public static IPAddress ChildAddress(int index)
    {
        CheckIndex(index);
        return new IPAddress([10, 43, (byte)(index / 254), (byte)((index % 254) + 1)]);
    }

    public static ChildNetwork Describe(int index) =>
        new(index, NamespaceName(index), Tap, GuestAddress, ChildAddress(index), HostVethName(index));

    /// <summary>Whether a namespace name is exactly one of ours (<c>forkd-child-</c> and a number without leading zeros).</summary>
    public static bool IsOurNamespace(string name) => NamespaceRegex().IsMatch(name);

    public static bool IsOurHostVeth(string name) => HostVethRegex().IsMatch(name);

    /// <summary>Host side: the bridge, forwarding and masquerading. Idempotent.</summary>
    public static void EnsureHost()
    {
        RequireRoot();
        if (!LinkExists(Bridge))
        {
            Ip("link", "add", Bridge, "type", "bridge");
        }

        Ip("addr", "replace", BridgeAddress + "/16", "dev", Bridge);
        Ip("link", "set", Bridge, "up");

        // Egress from children needs the host to route; forkd's own table, replaced whole each time.
        File.WriteAllText("/proc/sys/net/ipv4/ip_forward", "1");
        Nft(null, $$"""
            table ip {{HostTable}} {}
            delete table ip {{HostTable}}
            table ip {{HostTable}} {
              chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                ip saddr 10.43.0.0/16 oifname != "{{Bridge}}" masquerade
              }
              chain forward {
                type filter hook forward priority filter; policy accept;
                iifname "{{Bridge}}" accept
                oifname "{{Bridge}}" ct state established,related accept
              }
            }
            """);
    }

    /// <summary>Creates (or repairs) child <paramref name="index"/>'s namespace. Idempotent.</summary>
    public static ChildNetwork EnsureChild(int index)
    {
        RequireRoot();
        var net = Describe(index);
        if (!ListNamespaces().Contains(net.Namespace))
        {
            Ip("netns", "add", net.Namespace);
        }

        IpIn(net.Namespace, "link", "set", "lo", "up");
        if (!LinkExists(Tap, net.Namespace))
        {
            IpIn(net.Namespace, "tuntap", "add", "dev", Tap, "mode", "tap");
        }

        IpIn(net.Namespace, "addr", "replace", TapAddress + "/24", "dev", Tap);
        IpIn(net.Namespace, "link", "set", Tap, "up");

        if (!LinkExists(NamespaceVeth, net.Namespace))
        {
            if (LinkExists(net.HostVeth))
            {
                Ip("link", "delete", net.HostVeth); // half a pair from an interrupted run
            }

            Ip("link", "add", net.HostVeth, "type", "veth", "peer", "name", NamespaceVeth, "netns", net.Namespace);
        }

        Ip("link", "set", net.HostVeth, "master", Bridge);
        Ip("link", "set", net.HostVeth, "up");
        IpIn(net.Namespace, "addr", "replace", net.ChildAddress + "/16", "dev", NamespaceVeth);
        IpIn(net.Namespace, "link", "set", NamespaceVeth, "up");
        IpIn(net.Namespace, "route", "replace", "default", "via", BridgeAddress.ToString(), "dev", NamespaceVeth);
        HostCommand.Run("ip", ["netns", "exec", net.Namespace, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], errorId: "NetworkSetupFailed");
        Nft(net.Namespace, $$"""
            table ip {{NamespaceTable}} {}
            delete table ip {{NamespaceTable}}
            table ip {{NamespaceTable}} {
              chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                ip saddr 10.42.0.0/24 oifname "{{NamespaceVeth}}" snat to {{net.ChildAddress}}
              }
            }
            """);
        return net;
    }

    /// <summary>
    /// A private namespace holding just a tap, for a parent VMM that needs a tap at boot (Firecracker opens
    /// it then) but must not touch the children's networks. Deleted with the parent.
    /// </summary>
    public static string CreateBootNamespace(string tapName)
    {
        RequireRoot();
        var name = string.Create(CultureInfo.InvariantCulture, $"forkd-boot-{Environment.ProcessId}-{Random.Shared.Next(0x10000000, int.MaxValue):x8}");
        Ip("netns", "add", name);
        try
        {
            IpIn(name, "tuntap", "add", "dev", tapName, "mode", "tap");
            IpIn(name, "link", "set", tapName, "up");
            return name;
        }
        catch
        {
            DeleteBootNamespace(name);
            throw;
        }
    }

    public static void DeleteBootNamespace(string name)
    {
        if (BootNamespaceRegex().IsMatch(name) && ListNamespaces().Contains(name))
        {
            Ip("netns", "delete", name);
        }
    }

    /// <summary>Everything on this host that forkd's network setup made, matched by exact names only.</summary>
    public static IReadOnlyList<ChildNetworkItem> Find()
    {
        var items = new List<ChildNetworkItem>();
        var namespaces = ListNamespaces().Where(IsOurNamespace).OrderBy(IndexOf).ToList();
        items.AddRange(namespaces.Select(n => new ChildNetworkItem("Namespace", n)));
        items.AddRange(ListNamespaces().Where(n => BootNamespaceRegex().IsMatch(n)).Select(n => new ChildNetworkItem("BootNamespace", n)));

        // A namespace's host veth goes with the namespace; only orphans (from an interrupted setup) are listed.
        var owned = namespaces.Select(n => HostVethName(IndexOf(n))).ToHashSet();
        items.AddRange(ListLinks().Where(l => IsOurHostVeth(l) && !owned.Contains(l)).Select(n => new ChildNetworkItem("Veth", n)));
        if (LinkExists(Bridge))
        {
            items.Add(new ChildNetworkItem("Bridge", Bridge));
        }

        if (HostCommand.TryRun("nft", ["list", "table", "ip", HostTable]).Code == 0)
        {
            items.Add(new ChildNetworkItem("NftTable", "ip " + HostTable));
        }

        return items;
    }

    /// <summary>Removes one item found by <see cref="Find"/>; refuses anything not named exactly as forkd names it.</summary>
    public static void Remove(ChildNetworkItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        RequireRoot();
        switch (item.Kind)
        {
            case "Namespace" when IsOurNamespace(item.Name):
                var users = ProcessesIn(item.Name);
                if (users.Count > 0)
                {
                    throw new ForkdException("NetworkNamespaceInUse", ForkdErrorKind.InUse,
                        $"network namespace {item.Name} still has processes in it (pid {string.Join(", ", users)})", item.Name)
                    {
                        Hint = "Stop the children that use it first (Get-ForkdChild | Stop-ForkdChild).",
                    };
                }

                Ip("netns", "delete", item.Name); // takes its tap and veth pair with it...
                WaitUntilGone(HostVethName(IndexOf(item.Name))); // ...but the kernel drops them asynchronously
                break;
            case "BootNamespace" when BootNamespaceRegex().IsMatch(item.Name):
                if (ProcessesIn(item.Name) is { Count: > 0 } booting)
                {
                    throw new ForkdException("NetworkNamespaceInUse", ForkdErrorKind.InUse,
                        $"network namespace {item.Name} still has a booting parent in it (pid {string.Join(", ", booting)})", item.Name);
                }

                Ip("netns", "delete", item.Name);
                break;
            case "Veth" when IsOurHostVeth(item.Name):
                // A veth whose namespace is being torn down can vanish between the check and the delete.
                if (HostCommand.TryRun("ip", ["link", "delete", item.Name]).Code != 0 && LinkExists(item.Name))
                {
                    Ip("link", "delete", item.Name);
                }

                break;
            case "Bridge" when item.Name == Bridge:
            case "NftTable" when item.Name == "ip " + HostTable:
                var left = ListNamespaces().Where(IsOurNamespace).ToList();
                if (left.Count > 0)
                {
                    throw new ForkdException("NetworkInUse", ForkdErrorKind.InUse,
                        $"keeping {item.Name}: child namespaces still use it ({string.Join(", ", left)})", item.Name);
                }

                if (item.Kind == "Bridge")
                {
                    Ip("link", "delete", Bridge);
                    break;
                }

                HostCommand.Run("nft", ["delete", "table", "ip", HostTable], errorId: "NetworkSetupFailed");
                break;
            default:
                throw new ForkdException("NotAForkdNetworkItem", ForkdErrorKind.InvalidArgument,
                    $"refusing to remove {item.Kind} '{item.Name}': not a name forkd creates", item.Name);
        }
    }

    public static int IndexOf(string namespaceName) =>
        int.Parse(namespaceName.AsSpan(NamespacePrefix.Length), NumberStyles.None, CultureInfo.InvariantCulture);

    public static IReadOnlyList<string> ListNamespaces()
    {
        var text = HostCommand.Run("ip", ["-j", "netns", "list"], errorId: "NetworkSetupFailed");
        if (string.IsNullOrWhiteSpace(text))
        {
            return [];
        }

        return [.. JsonNode.Parse(text)!.AsArray().Select(n => (string?)n!["name"]).OfType<string>()];
    }

    private static List<string> ListLinks()
    {
        var text = HostCommand.Run("ip", ["-j", "link", "show"], errorId: "NetworkSetupFailed");
        return [.. JsonNode.Parse(text)!.AsArray().Select(n => (string?)n!["ifname"]).OfType<string>()];
    }

    private static bool LinkExists(string name, string? netns = null)
    {
        var args = netns is null ? new[] { "link", "show", "dev", name } : ["-n", netns, "link", "show", "dev", name];
        return HostCommand.TryRun("ip", args).Code == 0;
    }

    /// <summary>Pids whose network namespace is the named one (same inode as its /run/netns bind mount).</summary>
    private static List<int> ProcessesIn(string netns)
    {
        var file = Path.Combine("/run/netns", netns);
        var inode = NativeFile.Inode(file);
        var pids = new List<int>();
        if (inode <= 0)
        {
            return pids;
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    var link = new FileInfo(Path.Combine(dir, "ns", "net")).LinkTarget;
                    if (link == $"net:[{inode}]")
                    {
                        pids.Add(pid);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                }
            }
        }

        return pids;
    }

    private static void RequireRoot()
    {
        if (NativeFile.EffectiveUid != 0)
        {
            throw new ForkdException("NetworkNeedsRoot", ForkdErrorKind.PermissionDenied,
                "creating or removing network namespaces, taps and NAT rules needs root", null)
            {
                Hint = "Run pwsh as root (sudo). Test-ForkdHost -Name NetworkNamespaces shows what this host allows.",
            };
        }
    }

    private static void WaitUntilGone(string link)
    {
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (LinkExists(link) && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(20);
        }
    }

    private static void CheckIndex(int index)
    {
        if (index is < 1 or > MaxIndex)
        {
            throw new ForkdException("InvalidChildIndex", ForkdErrorKind.InvalidArgument,
                $"child network index {index} is outside 1–{MaxIndex}", index);
        }
    }

    private static void Ip(params string[] args) => HostCommand.Run("ip", args, errorId: "NetworkSetupFailed");

    private static void IpIn(string netns, params string[] args) => HostCommand.Run("ip", ["-n", netns, .. args], errorId: "NetworkSetupFailed");

    private static void Nft(string? netns, string script)
    {
        var (exe, args) = netns is null ? ("nft", new[] { "-f", "-" }) : ("ip", new[] { "netns", "exec", netns, "nft", "-f", "-" });
        HostCommand.Run(exe, args, script.ReplaceLineEndings("\n"), "NetworkSetupFailed");
    }

    [GeneratedRegex("^forkd-child-[1-9][0-9]{0,4}$")]
    private static partial Regex NamespaceRegex();

    [GeneratedRegex("^forkd-boot-[0-9]+-[0-9a-f]{8}$")]
    private static partial Regex BootNamespaceRegex();

    [GeneratedRegex("^forkd-v-[1-9][0-9]{0,4}h$")]
    private static partial Regex HostVethRegex();
}
