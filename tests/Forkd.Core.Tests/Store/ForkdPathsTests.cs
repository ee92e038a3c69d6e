using Forkd.Core.Store;

namespace Forkd.Core.Tests;

public class ForkdPathsTests
{
    private static Func<string, string?> Env(params (string Key, string Value)[] vars) =>
        key => vars.FirstOrDefault(v => v.Key == key).Value;

    [Fact]
    public void Explicit_variable_wins() =>
        Assert.Equal("/srv/f", ForkdPaths.ResolveDataDirectory(Env(("FORKD_DATA_DIR", "/srv/f"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h"))));

    [Fact]
    public void Xdg_data_home_comes_next() =>
        Assert.Equal("/x/forkd", ForkdPaths.ResolveDataDirectory(Env(("XDG_DATA_HOME", "/x"), ("HOME", "/h"))));

    [Fact]
    public void Home_is_the_fallback() =>
        Assert.Equal("/h/.local/share/forkd", ForkdPaths.ResolveDataDirectory(Env(("HOME", "/h"))));

    [Fact]
    public void Empty_variables_are_ignored() =>
        Assert.Equal("/h/.local/share/forkd", ForkdPaths.ResolveDataDirectory(Env(("FORKD_DATA_DIR", ""), ("XDG_DATA_HOME", ""), ("HOME", "/h"))));
}
