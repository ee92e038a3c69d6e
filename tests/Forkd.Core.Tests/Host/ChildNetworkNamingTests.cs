using System.Net;
using Forkd.Core.Host;
using Xunit;

namespace Forkd.Core.Tests.Host;

public sealed class ChildNetworkNamingTests
{
    [Theory]
    [InlineData(1, "10.43.0.2")]
    [InlineData(253, "10.43.0.254")]
    [InlineData(254, "10.43.1.1")] // forkd 0.1.3 gave child 254 the broadcast address 10.43.0.255
    [InlineData(255, "10.43.1.2")]
    [InlineData(65023, "10.43.255.254")]
    public void Child_addresses_carry_into_the_third_octet(int index, string expected)
    {
        Assert.Equal(IPAddress.Parse(expected), ChildNetworks.ChildAddress(index));
    }

    [Fact]
    public void Every_child_address_is_unique_usable_and_not_the_bridge()
    {
        var seen = new HashSet<IPAddress>();
        for (var i = 1; i <= ChildNetworks.MaxIndex; i++)
        {
            var a = ChildNetworks.ChildAddress(i).GetAddressBytes();
            Assert.InRange(a[3], 1, 254);
            Assert.True(seen.Add(new IPAddress(a)), $"child {i} repeats an address");
        }

        Assert.DoesNotContain(ChildNetworks.BridgeAddress, seen);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(65024)]
    public void Indexes_outside_the_address_plan_are_refused(int index)
    {
        var error = Assert.Throws<ForkdException>(() => ChildNetworks.ChildAddress(index));
        Assert.Equal("InvalidChildIndex", error.ErrorId);
    }

    [Theory]
    [InlineData("forkd-child-1", true)]
    [InlineData("forkd-child-65023", true)]
    [InlineData("forkd-child-1x", false)]
    [InlineData("forkd-childX", false)]
    [InlineData("forkd-child-01", false)]
    [InlineData("forkd-child-", false)]
    [InlineData("xforkd-child-1", false)]
    [InlineData("forkd-child-1 ", false)]
    public void Only_exact_namespace_names_are_ours(string name, bool ours)
    {
        Assert.Equal(ours, ChildNetworks.IsOurNamespace(name));
    }

    [Theory]
    [InlineData("forkd-v-1h", true)]
    [InlineData("forkd-v-1hx", false)]
    [InlineData("forkd-v-h", false)]
    [InlineData("forkd-v-01h", false)]
    public void Only_exact_host_veth_names_are_ours(string name, bool ours)
    {
        Assert.Equal(ours, ChildNetworks.IsOurHostVeth(name));
    }

    [Fact]
    public void Host_veth_names_fit_the_kernel_interface_name_limit()
    {
        Assert.True(ChildNetworks.HostVethName(ChildNetworks.MaxIndex).Length <= 15);
    }
}
