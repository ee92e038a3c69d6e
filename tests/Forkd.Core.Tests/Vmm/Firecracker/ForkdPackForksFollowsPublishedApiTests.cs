using Forkd.Core.Vmm;
using System.Globalization;
using Forkd.Core.Engine;
using Forkd.Core.Host;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Forkd.Core.Tests.Hub;
using Forkd.Core.Vmm.Firecracker;
using Xunit;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// docs/hub.md's promise, end to end: a pack as forkd 0.1.3 writes it (hand-written manifest, GNU tar
/// and zstd on the command line, another host's absolute paths in snapshot.json) is imported and forks
/// on the Firecracker backend, against stand-ins that judge every call by the published API description.
/// </summary>
public sealed class ForkdPackForksFollowsPublishedApiTests : IAsyncLifetime
{
    private readonly HubSandbox _box = new();
    private FakeFirecracker _fc = null!;
    private ForkdTcpAgentStandIn _agent = null!;

    public Task InitializeAsync()
    {
        _fc = new FakeFirecracker(Path.Combine(_box.Root, "bin"));
        _agent = new ForkdTcpAgentStandIn();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        var registry = new ChildRegistry(_box.Paths, isVmmExecutable: FakeFirecracker.IsItsExecutable);
        foreach (var child in registry.List().Where(c => c.State == ChildState.Running))
        {
            await ChildStopper.StopAsync(registry, child);
        }

        await _agent.DisposeAsync();
        await _fc.DisposeAsync();
        _box.Dispose();
    }

    [Fact]
    public async Task A_pack_made_the_way_forkd_makes_it_imports_and_forks_on_Firecracker_FollowsPublishedApi()
    {
        // The packing host: forkd's snapshot dir and its rootfs, which this host also has at the recorded path.
        var rootfs = Path.Combine(_box.Root, "images", "python-rootfs.squashfs");
        Directory.CreateDirectory(Path.GetDirectoryName(rootfs)!);
        File.WriteAllBytes(rootfs, new byte[4096]);
        var packer = Path.Combine(_box.Root, "packing-host", "pyagent");
        var fixture = new ForkdSnapshotFixture(packer, rootfs, [], memoryMiB: 16);
        var files = new[] { "snapshot.json", "vmstate", "memory.bin" };
        var manifest = "forkd_pack_version = 1\ntag = \"pyagent\"\ncreated_at = \"2026-05-14T06:47:27Z\"\nforkd_version = \"0.1.3\"\n" + string.Concat(files.Select(f =>
            string.Create(CultureInfo.InvariantCulture, $"\n[[files]]\npath = \"{f}\"\nsize = {new FileInfo(Path.Combine(packer, f)).Length}\nsha256 = \"{HubSandbox.Sha256(Path.Combine(packer, f))}\"\n")));
        File.WriteAllText(Path.Combine(packer, "manifest.toml"), manifest);
        var pack = Path.Combine(_box.Root, "pyagent.forkd-snapshot.tar.zst");
        HubSandbox.Sh($"tar --format=gnu -cf - manifest.toml {string.Join(' ', files)} | zstd -q -3 -o '{pack}'", packer);
        Directory.Delete(packer, recursive: true); // nothing of the packing host's snapshot dir is left to resolve against

        var installed = await new PackInstaller(_box.Paths).ImportFileAsync(pack, new ImportOptions(), null, CancellationToken.None);
        _fc.Configure = server => server.ReadSavedState = path => path == Path.Combine(installed.Path, "vmstate") ? fixture.SavedState() : null;
        var backend = new FirecrackerBackend(_fc.Binary) { ForkdAgentEndpoint = _agent.Endpoint };
        var engine = new ForkdEngine(_box.Paths, new BackendCatalog().Register(BackendKind.Firecracker, () => backend),
            new ChildRegistry(_box.Paths, isVmmExecutable: FakeFirecracker.IsItsExecutable));
        var registry = engine.Children;
        var outcomes = await engine.Forker
            .ForkAsync(new ForkRequest { Tag = "pyagent", Count = 2, AgentTimeout = TimeSpan.FromSeconds(10) }, null, CancellationToken.None);

        Assert.Equal(BackendKind.Firecracker, installed.Backend);
        Assert.All(outcomes, o => Assert.Null(o.Error));
        Assert.Empty(_fc.AllViolations);
        Assert.All(_fc.Launches, l => Assert.Equal(["PUT /snapshot/load"], l.Server.Requests.Select(r => r.ToString())));
        Assert.All(_fc.Launches, l => Assert.Equal(Path.Combine(installed.Path, "memory.bin"),
            (string?)l.Server.Requests.Single().Body!["mem_backend"]!["backend_path"]));
        Assert.Equal(2, registry.List().Count(c => c.State == ChildState.Running));
    }
}
