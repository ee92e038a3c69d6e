using Forkd.Core.Engine;
using Forkd.Core.Guest;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Forkd.Core.Vmm.Qemu;

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

    public ForkdPaths Paths => _temp.Paths;

    public TempPaths Temp => _temp;

    public static string RepoRoot { get; } = FindRoot();

    public async Task InitializeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var cache = Environment.GetEnvironmentVariable(GuestImageBuilder.CacheDirVariable) is { Length: > 0 } c ? c : Path.Combine(RepoRoot, ".cache");
        var image = await new GuestImageBuilder(Paths, null, cache).BuildAsync("minimal", false, null, cts.Token);
        var backend = new QemuBackend { TscKiloHertz = HostTsc.KiloHertz() ?? 0 };
        var builder = new SnapshotBuilder(Paths, backend, new ChildRegistry(Paths), new AcceleratorChooser(Paths, backend).ChooseAsync);
        await builder.CreateAsync(new SnapshotRequest
        {
            Tag = Tag,
            Recipe = "minimal",
            KernelPath = image.KernelPath,
            InitramfsPath = image.InitramfsPath,
            KernelCommandLine = image.KernelCommandLine,
            MemoryMiB = image.MemoryMiB,
            WarmupCode = string.Join("\n", new[] { image.WarmupCode, Warmup }.Where(w => !string.IsNullOrWhiteSpace(w))),
            Accelerator = AcceleratorPreference.Tcg,
            CreatedBy = "Forkd.Service.Tests",
        }, null, null, cts.Token);
    }

    public async Task DisposeAsync()
    {
        var registry = new ChildRegistry(Paths);
        await Task.WhenAll(registry.List().Select(child => ChildStopper.StopAsync(registry, child)));
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
