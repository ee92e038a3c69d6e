using Forkd.Core.Store;

namespace Forkd.Core.Tests;

/// <summary>
/// The data dir rule, as a table over environments. <c>null</c> means unset, <c>""</c> set but empty:
/// forkd 0.1.3's <c>data_dir()</c> (spec 1.2) tests whether a variable is set, not whether it is non-empty.
/// </summary>
public class ForkdPathsTests
{
    private static readonly string Cwd = Environment.CurrentDirectory;

    public static TheoryData<string?, string?, string?, string> Cases => new()
    {
        // FORKD_DATA_DIR, XDG_DATA_HOME, HOME → data dir
        { "/srv/f", "/x", "/h", "/srv/f" },                            // ours wins when non-empty
        { "", "/x", "/h", "/x/forkd" },                                // empty FORKD_DATA_DIR is ignored
        { null, "/x", "/h", "/x/forkd" },
        { null, "/x/", "/h", "/x/forkd" },
        { null, "", "/h", Path.Combine(Cwd, "forkd") },                // set but empty: forkd joins "" and "forkd"
        { null, "", null, Path.Combine(Cwd, "forkd") },
        { null, "rel", "/h", Path.Combine(Cwd, "rel", "forkd") },      // relative, as forkd allows
        { null, null, "/h", "/h/.local/share/forkd" },
        { null, null, "", Path.Combine(Cwd, ".local", "share", "forkd") }, // empty HOME: relative, not the fallback
        { null, null, null, "/tmp/.local/share/forkd" },               // HOME unset: forkd's literal /tmp
        { "", null, null, "/tmp/.local/share/forkd" },
        { "", "", "", Path.Combine(Cwd, "forkd") },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Data_dir_follows_forkd_for_every_combination_of_set_empty_and_unset(string? forkdDataDir, string? xdgDataHome, string? home, string expected)
    {
        var env = new Dictionary<string, string?>
        {
            ["FORKD_DATA_DIR"] = forkdDataDir,
            ["XDG_DATA_HOME"] = xdgDataHome,
            ["HOME"] = home,
        };

        Assert.Equal(expected, ForkdPaths.ResolveDataDirectory(key => env.GetValueOrDefault(key)));
    }
}
