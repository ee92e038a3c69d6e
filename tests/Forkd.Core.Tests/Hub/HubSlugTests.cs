using Forkd.Core.Hub;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// Pull targets built exactly as forkd builds them (spec 1.12.5). The expected URLs were produced by a Rust
/// program using forkd's rule verbatim (<c>c.is_alphanumeric() || c == '/'</c>, <c>starts_with("http://")</c>,
/// <c>format!("{base}/{slug}.forkd-snapshot.tar.zst")</c>; rustc 1.95) with non-ASCII bytes percent-encoded
/// in UTF-8, as the url crate under ureq encodes a path.
/// </summary>
public sealed class HubSlugTests
{
    private const string Hub = "https://hub.example/";

    public static TheoryData<string, string> Targets() => new()
    {
        { "alice/py.agent_2", "https://hub.example/alice/py-agent-2.forkd-snapshot.tar.zst" },
        { "café/naïve", "https://hub.example/caf%C3%A9/na%C3%AFve.forkd-snapshot.tar.zst" },
        { "東京/模型", "https://hub.example/%E6%9D%B1%E4%BA%AC/%E6%A8%A1%E5%9E%8B.forkd-snapshot.tar.zst" },
        { "alice/\U0001D518nicode", "https://hub.example/alice/%F0%9D%94%98nicode.forkd-snapshot.tar.zst" }, // a letter outside the BMP stays one letter
        { "alice/py\U0001F600", "https://hub.example/alice/py-.forkd-snapshot.tar.zst" }, // an emoji is one '-', not two
        { "alice/x\u00B2", "https://hub.example/alice/x%C2%B2.forkd-snapshot.tar.zst" }, // No (superscript two) is numeric
        { "alice/\u216B", "https://hub.example/alice/%E2%85%AB.forkd-snapshot.tar.zst" }, // Nl (Roman numeral twelve)
        { "alice/\u0939\u093F\u0928\u094D\u0926\u0940", "https://hub.example/alice/%E0%A4%B9%E0%A4%BF%E0%A4%A8-%E0%A4%A6%E0%A5%80.forkd-snapshot.tar.zst" }, // vowel signs are Other_Alphabetic, the virama is not
        { "alice/\u24B6bc", "https://hub.example/alice/%E2%92%B6bc.forkd-snapshot.tar.zst" }, // circled letter: Other_Alphabetic
        { "alice/\u0301e", "https://hub.example/alice/-e.forkd-snapshot.tar.zst" }, // a combining accent is not alphabetic
        { "ÅSA/\uFB01le", "https://hub.example/%C3%85SA/%EF%AC%81le.forkd-snapshot.tar.zst" },
        { "alice/\u0663\u0664", "https://hub.example/alice/%D9%A3%D9%A4.forkd-snapshot.tar.zst" }, // Arabic-Indic digits
        { "HTTP://example.com/p.tar.zst", "https://hub.example/HTTP-//example-com/p-tar-zst.forkd-snapshot.tar.zst" }, // forkd's prefix test is case-sensitive
        { "Https://x/y", "https://hub.example/Https-//x/y.forkd-snapshot.tar.zst" },
        { "a/../../b", "https://hub.example/a/--/--/b.forkd-snapshot.tar.zst" },
        { "https://example.com/p.tar.zst", "https://example.com/p.tar.zst" },
        { "http://example.com/x?sig=1", "http://example.com/x?sig=1" },
    };

    [Theory]
    [MemberData(nameof(Targets))]
    public void Pull_targets_resolve_exactly_as_forkd_builds_them(string target, string expected) =>
        Assert.Equal(expected, HubClient.ResolvePullTarget(target, Hub, _ => null).AbsoluteUri);

    [Theory]
    [InlineData("HTTP://HUB.Example//", "alice/py", "http://hub.example/alice/py.forkd-snapshot.tar.zst")]
    [InlineData("https://hub.example/base///", "alice/py", "https://hub.example/base/alice/py.forkd-snapshot.tar.zst")]
    public void The_hub_base_is_trimmed_of_trailing_slashes_and_its_scheme_may_be_any_case(string hub, string target, string expected) =>
        Assert.Equal(expected, HubClient.ResolvePullTarget(target, hub, _ => null).AbsoluteUri);

    [Fact]
    public void An_upper_case_url_without_a_hub_says_why_it_was_not_taken_as_a_url()
    {
        var ex = Assert.Throws<ForkdException>(() => HubClient.ResolvePullTarget("HTTP://example.com/p.tar.zst", null, _ => null));
        Assert.Equal("HubNotConfigured", ex.ErrorId);
        Assert.Contains("lower-case", ex.Hint, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData('a', true)]
    [InlineData('7', true)]
    [InlineData('-', false)]
    [InlineData('_', false)]
    [InlineData('\u0345', true)] // COMBINING GREEK YPOGEGRAMMENI: Mn but Other_Alphabetic
    [InlineData('\u094D', false)]
    [InlineData('\u00BD', true)] // ½ is No
    public void Rusts_is_alphanumeric_is_reproduced(char c, bool expected) =>
        Assert.Equal(expected, HubSlug.IsRustAlphanumeric(new System.Text.Rune(c)));
}
