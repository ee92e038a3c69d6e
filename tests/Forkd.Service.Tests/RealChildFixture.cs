using Forkd.Core;
using Forkd.Core.Engine;
using Forkd.Core.Store;
using Forkd.Core.Vmm;

namespace Forkd.Service.Tests;

/// <summary>The VM tests share one snapshot and run one class at a time.</summary>
[CollectionDefinition(Name)]
public sealed class RealChildGroup : ICollectionFixture<RealChildFixture>
{
    public const string Name = "RealChild";
}

/// <summary>
/// One real snapshot for the VM tests: the <c>minimal</c> recipe's guest image (from FORKD_CACHE_DIR, else the
/// repository's .cache) booted under QEMU/TCG with a warm-up, in a private data dir. Children left over are stopped.
/// </summary>
public sealed class RealChildFixture : IAsyncLifetime
{
    public const string Tag = "svc";
    public const string Warmup = "warm = {'token': 'svc-w4rm', 'squares': [i * i for i in range(100)]}";

    private readonly TempPaths _temp = new();

    public ForkdPaths Paths { get; private set; } = null!;

    public TempPaths Temp => _temp;

    public static string RepoRoot { get; } = FindRoot();

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var cache = Environment.GetEnvironmentVariable(ForkdPaths.CacheDirVariable) is { Length: > 0 } c ? c : Path.Combine(RepoRoot, ".cache");
        Paths = _temp.Paths with { CacheDirectory = Path.GetFullPath(cache) };
        var engine = new ForkdEngine(Paths);
        var request = await engine.Recipes.ResolveAsync(new SnapshotRequest
        {
            Tag = Tag,
            Recipe = "minimal",
            KernelPath = "",
            WarmupCode = Warmup,
            Accelerator = AcceleratorPreference.Tcg,
            CreatedBy = "Forkd.Service.Tests",
        }, false, null, null, cts.Token);
        await engine.CreateSnapshotAsync(request, BackendKind.Qemu, null, null, cts.Token);
    }

    public async Task DisposeAsync()
    {
        var engine = new ForkdEngine(Paths);
        await Task.WhenAll(engine.Children.List().Select(engine.StopChildAsync));
        _temp.Dispose();
    }

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
