using System.Collections.Specialized;
using System.Text.Json.Nodes;
using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;
using Xunit;

namespace Forkd.Core.Tests.Engine;

public sealed class GuestValueTests
{
    [Fact]
    public void Scalars_decode_to_native_types()
    {
        Assert.Equal(42L, Assert.IsType<long>(GuestValue.Decode("42")));
        Assert.Equal(2.5, Assert.IsType<double>(GuestValue.Decode("2.5")));
        Assert.Equal("a\"b", GuestValue.Decode("\"a\\\"b\""));
        Assert.Equal(true, GuestValue.Decode("true"));
        Assert.Null(GuestValue.Decode("null"));
    }

    [Fact]
    public void Sentinels_and_bare_literals_become_non_finite_doubles_but_strings_that_mention_them_stay()
    {
        Assert.True(double.IsNaN((double)GuestValue.Decode("\"__js_NaN__\"")!));
        Assert.Equal(double.PositiveInfinity, GuestValue.Decode("\"__js_Infinity__\""));
        Assert.Equal(double.NegativeInfinity, GuestValue.Decode("\"__js_-Infinity__\""));
        var array = (object?[])GuestValue.Decode("[NaN, -Infinity, \"NaN is a word\"]")!;
        Assert.True(double.IsNaN((double)array[0]!));
        Assert.Equal(double.NegativeInfinity, array[1]);
        Assert.Equal("NaN is a word", array[2]);
    }

    [Fact]
    public void Objects_keep_key_order_and_nest()
    {
        var d = (OrderedDictionary)GuestValue.Decode("{\"b\": 1, \"a\": [1, {\"c\": null}]}")!;
        Assert.Equal(["b", "a"], d.Keys.Cast<string>());
        var inner = (OrderedDictionary)((object?[])d["a"]!)[1]!;
        Assert.True(inner.Contains("c"));
    }

    [Fact]
    public void Text_that_is_not_json_is_returned_as_is()
    {
        Assert.Equal("<object at 0x1>", GuestValue.Decode("<object at 0x1>"));
    }
}
