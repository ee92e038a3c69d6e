namespace Forkd.Core.Tests.Big;

/// <summary>Files of the source tree the tests run against (guest scripts, recipes).</summary>
internal static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Guest(params string[] parts) => Path.Combine([Root, "guest", .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Forkd.psd1")) && Directory.Exists(Path.Combine(dir.FullName, "guest")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root above " + AppContext.BaseDirectory);
    }
}
