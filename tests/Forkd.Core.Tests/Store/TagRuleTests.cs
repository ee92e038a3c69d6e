using Forkd.Core;
using Forkd.Core.Store;

namespace Forkd.Core.Tests;

public class TagRuleTests
{
    public static TheoryData<string?, string> HostileTags => new()
    {
        { null, "empty" },
        { "", "empty" },
        { "/etc/passwd", "position 1" },
        { "..", "position 1" },
        { "../x", "position 1" },
        { "a/../../etc", "'/' (U+002F) at position 2" },
        { ".hidden", "position 1" },
        { "-rf", "position 1" },
        { new string('a', 65), "longer than 64" },
        { "a\0b", "U+0000 at position 2" },
        { "a\nb", "U+000A at position 2" },
        { "py\u0430gent", "U+0430 at position 3" }, // Cyrillic a, looks like Latin a
        { "tag\uFF0Fx", "U+FF0F at position 4" },    // fullwidth solidus
        { "a b", "' ' (U+0020) at position 2" },
        { "a\\b", "position 2" },
        { "C:", "position 2" },
    };

    [Theory]
    [MemberData(nameof(HostileTags))]
    public void Hostile_tags_are_rejected_with_InvalidTag_naming_the_problem(string? tag, string expected)
    {
        var ex = Assert.Throws<ForkdException>(() => TagRule.Validate(tag));
        Assert.Equal("InvalidTag", ex.ErrorId);
        Assert.Equal(ForkdErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.DoesNotContain('\0', ex.Message);
    }

    [Theory]
    [InlineData("a")]
    [InlineData("_x")]
    [InlineData("py3.11-numpy_v2")]
    [InlineData("a..b")]
    [InlineData("x.")]
    [InlineData("9")]
    public void Legal_tags_pass(string tag) => Assert.Equal(tag, TagRule.Validate(tag));

    [Fact]
    public void Sixty_four_characters_is_the_longest_tag()
    {
        Assert.True(TagRule.IsValid(new string('b', 64)));
        Assert.False(TagRule.IsValid(new string('b', 65)));
    }

    [Fact]
    public void Snapshot_directory_never_leaves_the_store()
    {
        var paths = new ForkdPaths("/data", "/tmp");
        Assert.Equal("/data/snapshots/ok", paths.SnapshotDirectory("ok"));
        Assert.Throws<ForkdException>(() => paths.SnapshotDirectory("/etc"));
        Assert.Throws<ForkdException>(() => paths.SnapshotDirectory(".."));
    }
}
