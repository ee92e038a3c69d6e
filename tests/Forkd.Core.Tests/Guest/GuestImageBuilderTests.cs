using Forkd.Core.Guest;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>
/// The real builder (apt, dpkg-deb) interrupted mid-build. Downloads go to the shared test cache
/// (FORKD_CACHE_DIR, else &lt;repo&gt;/.cache) so they are fetched once; the image itself is never
/// published because the build is cancelled.
/// </summary>
[Trait(Tiers.Name, Tiers.Full)]
public sealed class GuestImageBuilderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("forkd-test-builder-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private static string SharedCache =>
        Environment.GetEnvironmentVariable(ForkdPaths.CacheDirVariable) is { Length: > 0 } dir
            ? dir
            : Path.Combine(AgentProcess.RepoRoot, ".cache");

    private sealed class CancelAt(string statusPrefix, CancellationTokenSource cts) : IProgress<GuestBuildProgress>
    {
        public List<string> Seen { get; } = [];

        public void Report(GuestBuildProgress value)
        {
            Seen.Add(value.Status);
            if (value.Status.StartsWith(statusPrefix, StringComparison.Ordinal))
            {
                cts.Cancel();
            }
        }
    }

    [Theory]
    [InlineData("Unpacking libc6")]
    [InlineData("Writing the initramfs")]
    public async Task A_cancelled_build_leaves_no_work_dir_and_no_staging_dir(string cancelAt)
    {
        var paths = new ForkdPaths(Path.Combine(_root, "data"), Directory.CreateDirectory(Path.Combine(_root, "tmp")).FullName);
        var builder = new GuestImageBuilder(paths, AgentProcess.Sources, SharedCache);
        var before = Directory.Exists(builder.ImagesDirectory) ? Directory.GetDirectories(builder.ImagesDirectory) : [];
        using var cts = new CancellationTokenSource();
        var progress = new CancelAt(cancelAt, cts);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => builder.BuildAsync("minimal", force: true, progress, cts.Token));

        Assert.Contains(progress.Seen, s => s.StartsWith(cancelAt, StringComparison.Ordinal));
        Assert.Empty(Directory.GetFileSystemEntries(paths.TempDirectory));
        Assert.Equal(before.Order(StringComparer.Ordinal), Directory.GetDirectories(builder.ImagesDirectory).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task An_unknown_package_in_a_recipe_is_PackageNotFound()
    {
        var recipes = Directory.CreateDirectory(Path.Combine(_root, "recipes", "broken")).FullName;
        await File.WriteAllTextAsync(Path.Combine(recipes, "recipe.json"),
            """{ "name": "broken", "packages": ["busybox-static", "forkd-no-such-package-xyz"] }""");
        var sources = AgentProcess.Sources with { RecipesDirectory = Path.Combine(_root, "recipes") };
        var paths = new ForkdPaths(Path.Combine(_root, "data"), Directory.CreateDirectory(Path.Combine(_root, "tmp2")).FullName);
        var builder = new GuestImageBuilder(paths, sources, Path.Combine(_root, "cache"));

        var ex = await Assert.ThrowsAsync<ForkdException>(() => builder.BuildAsync("broken"));

        Assert.Equal("PackageNotFound", ex.ErrorId);
        Assert.Contains("forkd-no-such-package-xyz", ex.Message);
    }
}
