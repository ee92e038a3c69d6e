namespace Forkd.Core.Guest;

/// <summary>
/// Where the guest files (<c>guest/forkd-init</c>, <c>guest/forkd-agent.py</c>) and the
/// recipes live: beside the module (build.ps1 copies both folders into out/Forkd) or, for
/// tests and development, in the source tree above the running assembly.
/// </summary>
public sealed record GuestSources(string GuestDirectory, string RecipesDirectory)
{
    public const string InitFileName = "forkd-init";
    public const string AgentFileName = "forkd-agent.py";

    public string InitPath => Path.Combine(GuestDirectory, InitFileName);

    public string AgentPath => Path.Combine(GuestDirectory, AgentFileName);

    /// <summary>Finds the folder holding <c>guest/</c> and <c>recipes/</c>, starting at this assembly's folder and walking up.</summary>
    public static GuestSources Locate()
    {
        var start = Path.GetDirectoryName(typeof(GuestSources).Assembly.Location);
        for (var dir = start; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(Path.Combine(dir, "guest", AgentFileName)) && Directory.Exists(Path.Combine(dir, "recipes")))
            {
                return new GuestSources(Path.Combine(dir, "guest"), Path.Combine(dir, "recipes"));
            }
        }

        throw new ForkdException("GuestSourcesNotFound", ForkdErrorKind.NotFound,
            $"cannot find guest/{AgentFileName} and recipes/ beside {start} or above it", start)
        {
            Hint = "Reinstall the module: its folder must contain guest/ and recipes/.",
        };
    }
}
