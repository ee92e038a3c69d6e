using Forkd.Core.Host;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Hub;

public sealed class PackRoundTripTests : IDisposable
{
    private static readonly string[] ExpectedOrder = ["snapshot.json", "vmstate", "memory.bin"];
    private static readonly string[] QemuOrder = ["snapshot.json", "vmstate", "vmlinux", "initramfs.img", "memory.bin"];
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    [Fact]
    public async Task Export_then_import_into_another_data_dir_gives_identical_files_and_portable_metadata()
    {
        var dir = HubSandbox.MakeSnapshot(_box.Paths, "py.agent_1", pages: 600);
        var pack = Path.Combine(_box.Root, "out.forkd-snapshot.tar.zst");
        var info = await new PackWriter(_box.Paths).ExportAsync("py.agent_1", pack, new PackOptions { Description = "d \"q\"" }, null, default);

        Assert.Equal(ExpectedOrder, info.Files.Select(f => f.Path));
        Assert.Equal(new FileInfo(pack).Length, info.PackedBytes);
        Assert.True(info.PackedBytes < info.UnpackedBytes / 2, $"pack {info.PackedBytes} of {info.UnpackedBytes}");

        var other = _box.NewDataDir("other");
        var snap = new PackInstaller(other).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);

        Assert.Equal("py.agent_1", snap.Tag);
        Assert.True(snap.IsComplete);
        foreach (var name in new[] { SnapshotFiles.Memory, SnapshotFiles.VmState })
        {
            Assert.Equal(HubSandbox.Sha256(Path.Combine(dir, name)), HubSandbox.Sha256(Path.Combine(snap.Path, name)));
        }

        // The packing host's absolute paths are gone; they resolve inside the new data dir.
        var json = File.ReadAllText(Path.Combine(snap.Path, SnapshotFiles.Metadata));
        Assert.DoesNotContain("/home/someone", json, StringComparison.Ordinal);
        Assert.Equal(Path.Combine(snap.Path, "memory.bin"), snap.Metadata.ResolveMemory(snap.Path));
        Assert.Contains("\"volumes\"", json, StringComparison.Ordinal);
        Assert.Empty(HubSandbox.Leftovers(other));
    }

    [Fact]
    public async Task Our_pack_is_read_by_the_zstd_and_tar_command_line_tools_with_manifest_first_and_matching_sha256()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "cli", pages: 300);
        var pack = Path.Combine(_box.Root, "cli.forkd-snapshot.tar.zst");
        var info = await new PackWriter(_box.Paths).ExportAsync("cli", pack, new PackOptions(), null, default);

        var listing = HubSandbox.Sh($"zstd -dc '{pack}' | tar -tvf -").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, listing.Length);
        Assert.EndsWith(" manifest.toml", listing[0], StringComparison.Ordinal);
        Assert.StartsWith("-rw-r--r--", listing[0], StringComparison.Ordinal);

        var outDir = Path.Combine(_box.Root, "cli-extract");
        Directory.CreateDirectory(outDir);
        HubSandbox.Sh($"zstd -dc '{pack}' | tar -xf - -C '{outDir}'");
        var manifest = PackManifest.Parse(File.ReadAllText(Path.Combine(outDir, "manifest.toml")), "cli");
        Assert.Equal(1, manifest.FormatVersion);
        Assert.Equal("cli", manifest.Tag);
        foreach (var file in manifest.Files)
        {
            var sum = HubSandbox.Sh($"sha256sum '{Path.Combine(outDir, file.Path)}'").Split(' ')[0];
            Assert.Equal(file.Sha256, sum);
            Assert.Equal(file.Size, new FileInfo(Path.Combine(outDir, file.Path)).Length);
        }

        Assert.Equal(info.Files, manifest.Files);
        // python's toml parser agrees on keys and types (an independent TOML reader).
        var types = HubSandbox.Sh($"python3 -c \"import tomllib,sys; m=tomllib.load(open('{outDir}/manifest.toml','rb')); print(type(m['forkd_pack_version']).__name__, type(m['files'][0]['size']).__name__, m['tag'])\"").Trim();
        Assert.Equal("int int cli", types);
    }

    [Fact]
    public async Task Imported_memory_image_keeps_zero_pages_as_holes()
    {
        var dir = HubSandbox.MakeSnapshot(_box.Paths, "holes", pages: 2000);
        var pack = Path.Combine(_box.Root, "holes.tar.zst");
        await new PackWriter(_box.Paths).ExportAsync("holes", pack, new PackOptions(), null, default);
        var other = _box.NewDataDir("holes2");
        var snap = new PackInstaller(other).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);
        var memory = Path.Combine(snap.Path, SnapshotFiles.Memory);
        var apparent = new FileInfo(memory).Length;
        var allocated = NativeFile.AllocatedBytes(memory);
        Assert.Equal(new FileInfo(Path.Combine(dir, SnapshotFiles.Memory)).Length, apparent);
        Assert.True(allocated < apparent * 0.6, $"allocated {allocated} of {apparent}: zero pages were written");
    }

    [Fact]
    public async Task Export_refuses_to_overwrite_without_overwrite_and_leaves_no_partial_file()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "ow");
        var pack = Path.Combine(_box.Root, "ow.tar.zst");
        File.WriteAllText(pack, "keep me");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => new PackWriter(_box.Paths).ExportAsync("ow", pack, new PackOptions(), null, default));
        Assert.Equal("PackOutputExists", ex.ErrorId);
        Assert.Equal("keep me", File.ReadAllText(pack));

        await new PackWriter(_box.Paths).ExportAsync("ow", pack, new PackOptions { Overwrite = true }, null, default);
        Assert.NotEqual("keep me", File.ReadAllText(pack)[..Math.Min(7, (int)new FileInfo(pack).Length)]);
        Assert.Single(Directory.GetFiles(_box.Root, "*ow.tar.zst*"));
    }

    [Fact]
    public async Task Export_of_an_incomplete_snapshot_fails_clearly()
    {
        var dir = HubSandbox.MakeSnapshot(_box.Paths, "inc");
        File.Delete(Path.Combine(dir, SnapshotFiles.VmState));
        var ex = await Assert.ThrowsAsync<ForkdException>(() => new PackWriter(_box.Paths).ExportAsync("inc", Path.Combine(_box.Root, "x"), new PackOptions(), null, default));
        Assert.Equal("PackSourceIncomplete", ex.ErrorId);
        Assert.False(File.Exists(Path.Combine(_box.Root, "x")));
    }

    [Fact]
    public async Task A_qemu_snapshot_travels_with_its_kernel_and_initramfs_before_memory()
    {
        var dir = HubSandbox.MakeSnapshot(_box.Paths, "qemu");
        File.WriteAllText(Path.Combine(dir, "vmlinux"), "kernel image");
        File.WriteAllText(Path.Combine(dir, "initramfs.img"), "initramfs");
        File.WriteAllText(Path.Combine(dir, "stray.txt"), "not packed");
        var pack = Path.Combine(_box.Root, "qemu.tar.zst");
        var info = await new PackWriter(_box.Paths).ExportAsync("qemu", pack, new PackOptions(), null, default);
        Assert.Equal(QemuOrder, info.Files.Select(f => f.Path));
        Assert.Equal(QemuOrder.Prepend("manifest.toml"), HubSandbox.Sh($"zstd -dc '{pack}' | tar -tf -").Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var snap = new PackInstaller(_box.NewDataDir("qemu2")).Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default);
        Assert.Equal("kernel image", File.ReadAllText(Path.Combine(snap.Path, "vmlinux")));
        Assert.Equal("initramfs", File.ReadAllText(Path.Combine(snap.Path, "initramfs.img")));
        Assert.False(File.Exists(Path.Combine(snap.Path, "stray.txt")));
    }

    [Fact]
    public async Task Export_into_a_missing_directory_fails_clearly()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "nodir");
        var ex = await Assert.ThrowsAsync<ForkdException>(() => new PackWriter(_box.Paths).ExportAsync("nodir", Path.Combine(_box.Root, "absent", "x.tar.zst"), new PackOptions(), null, default));
        Assert.Equal("PackOutputDirectoryNotFound", ex.ErrorId);
    }

    [Fact]
    public async Task Cancelled_export_leaves_no_file()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "cancel", pages: 4000);
        var pack = Path.Combine(_box.Root, "cancel.tar.zst");
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(_ => cts.Cancel());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new PackWriter(_box.Paths).ExportAsync("cancel", pack, new PackOptions(), progress, cts.Token));
        Assert.Empty(Directory.GetFiles(_box.Root));
    }

    [Fact]
    public async Task Import_with_force_replaces_and_without_force_refuses()
    {
        HubSandbox.MakeSnapshot(_box.Paths, "rep");
        var pack = Path.Combine(_box.Root, "rep.tar.zst");
        await new PackWriter(_box.Paths).ExportAsync("rep", pack, new PackOptions(), null, default);
        var installer = new PackInstaller(_box.Paths);

        var ex = Assert.Throws<ForkdException>(() => installer.Import(File.OpenRead(pack), pack, null, new ImportOptions(), null, default));
        Assert.Equal("SnapshotExists", ex.ErrorId);

        File.WriteAllText(Path.Combine(_box.Paths.SnapshotDirectory("rep"), "marker"), "old");
        var snap = installer.Import(File.OpenRead(pack), pack, null, new ImportOptions { Force = true }, null, default);
        Assert.False(File.Exists(Path.Combine(snap.Path, "marker")));
        Assert.True(snap.IsComplete);

        var renamed = installer.Import(File.OpenRead(pack), pack, null, new ImportOptions { Tag = "rep2" }, null, default);
        Assert.Equal("rep2", renamed.Tag);
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }

    [Fact]
    public void Manifest_round_trips_and_escapes_strings()
    {
        var m = new PackManifest
        {
            Tag = "t",
            Description = "line1\nline2 \"quoted\" \\ back",
            BaseImage = "python:3.12-slim",
            CreatedAt = "2026-05-14T06:47:27Z",
            ForkdVersion = "0.1.3",
            Files = [new PackFileEntry("vmstate", 12, new string('a', 64))],
        };
        var parsed = PackManifest.Parse(m.ToToml(), "test");
        Assert.Equal(m.Description, parsed.Description);
        Assert.Equal(m.Files, parsed.Files);
        Assert.StartsWith("forkd_pack_version = 1\ntag = \"t\"\n", m.ToToml(), StringComparison.Ordinal);
    }

    private sealed class SyncProgress(Action<PackProgress> action) : IProgress<PackProgress>
    {
        public void Report(PackProgress value) => action(value);
    }
}
