using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core.Hub;
using Forkd.Core.Store;
using Xunit;

namespace Forkd.Core.Tests.Hub;

/// <summary>
/// Packs that are honest tar + zstd but whose snapshot.json names host resources or has wrong types:
/// refused before install (PackUnsafeMetadata / SnapshotMetadataInvalid, naming the field), never
/// replacing a good snapshot; volumes arrive unbound.
/// </summary>
public sealed class PackMetadataSafetyTests : IDisposable
{
    private static readonly byte[] VmState = RandomNumberGenerator.GetBytes(500);
    private static readonly byte[] Memory = new byte[65536];
    private readonly HubSandbox _box = new();

    public void Dispose() => _box.Dispose();

    /// <summary>What our QEMU backend writes, with a root disk and one volume.</summary>
    internal static JsonObject QemuMetadata() => JsonNode.Parse("""
        {
          "vmstate": "vmstate",
          "memory": "memory.bin",
          "volumes": [ { "host_path": "/var/lib/forkd/vol/cache.img", "guest_path": "/opt/cache", "read_only": false } ],
          "created_at": "2026-05-14T06:47:27+00:00",
          "created_by": "Forkd 0.2.0",
          "backend": "qemu",
          "accelerator": "tcg",
          "memory_mib": 256,
          "vcpu_count": 1,
          "backend_config": {
            "machine": "microvm,x-option-roms=off",
            "kernel": "vmlinux",
            "initrd": "initramfs.img",
            "append": "console=ttyS0 forkd.mounts=vdb:/opt/cache",
            "memory_mib": 256,
            "vcpu_count": 1,
            "accelerator": "tcg",
            "agent_port": "forkd.agent",
            "drives": [
              { "id": "root", "path": "rootdisk.img", "read_only": true, "root": true },
              { "id": "vol0", "path": "/var/lib/forkd/vol/cache.img", "read_only": false, "root": false }
            ],
            "nic_mac": null
          }
        }
        """)!.AsObject();

    internal static JsonObject FirecrackerMetadata() => JsonNode.Parse("""
        {
          "vmstate": "vmstate", "memory": "memory.bin", "volumes": [], "backend": "firecracker", "accelerator": "kvm",
          "backend_config": {
            "backend": "Firecracker", "vcpuCount": 1, "memoryMiB": 256, "guestCid": 3, "vsockSocket": "vsock.sock", "agentVsockPort": 1024,
            "kernel": "vmlinux", "initrd": null,
            "drives": [ { "id": "root", "file": "disk-root.img", "hostPath": "disk-root.img", "readOnly": false, "isRoot": true, "savedCopy": "disk-root.img" } ]
          }
        }
        """)!.AsObject();

    private string Pack(string json, string name = "meta")
    {
        var jsonBytes = Encoding.UTF8.GetBytes(json);
        var files = new (string Name, byte[] Data)[] { ("snapshot.json", jsonBytes), ("vmstate", VmState), ("memory.bin", Memory) };
        var manifest = new StringBuilder("forkd_pack_version = 1\ntag = \"good\"\ncreated_at = \"2026-05-14T06:47:27Z\"\nforkd_version = \"0.1.3\"\n");
        foreach (var (file, data) in files)
        {
            manifest.Append(CultureInfo.InvariantCulture, $"\n[[files]]\npath = \"{file}\"\nsize = {data.Length}\nsha256 = \"{Convert.ToHexStringLower(SHA256.HashData(data))}\"\n");
        }

        var tar = Path.Combine(_box.Root, name + "-" + Guid.NewGuid().ToString("N")[..6] + ".tar");
        using (var stream = File.Create(tar))
        {
            var w = new GnuTarTestWriter(stream);
            w.AddFile("manifest.toml", Encoding.UTF8.GetBytes(manifest.ToString()));
            foreach (var (file, data) in files)
            {
                w.AddFile(file, data);
            }

            w.End();
        }

        HubSandbox.Sh($"zstd -q -f -3 '{tar}' -o '{tar}.zst'");
        return tar + ".zst";
    }

    private SnapshotInfo Import(string pack, ImportOptions? options = null, ForkdPaths? paths = null)
    {
        using var stream = File.OpenRead(pack);
        return new PackInstaller(paths ?? _box.Paths).Import(stream, pack, null, options ?? new ImportOptions(), null, default);
    }

    private static string Mutate(Func<JsonObject> start, Action<JsonObject> change)
    {
        var doc = start();
        change(doc);
        return doc.ToJsonString();
    }

    private static JsonObject Drive(JsonObject doc, int i) => doc["backend_config"]!["drives"]![i]!.AsObject();

    public static TheoryData<string, string, string> UnsafeVariants() => new()
    {
        // variant, snapshot.json, field the error must name
        { "drive path absolute", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "/etc/passwd"), "backend_config.drives[0].path" },
        { "drive path with ..", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "../../../../etc/passwd"), "backend_config.drives[0].path" },
        { "drive is a host block device", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "/dev/sda"), "backend_config.drives[0].path" },
        { "root disk outside", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "/var/lib/images/root.img"), "backend_config.drives[0].path" },
        { "root disk in a subdirectory", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "sub/rootdisk.img"), "backend_config.drives[0].path" },
        { "extra drive posing as a volume", Mutate(QemuMetadata, d => d["backend_config"]!["drives"]!.AsArray().Add(new JsonObject { ["id"] = "vol1", ["path"] = "/dev/sdb", ["read_only"] = false, ["root"] = false })), "backend_config.drives[2].path" },
        { "kernel outside", Mutate(QemuMetadata, d => d["backend_config"]!["kernel"] = "/boot/vmlinuz"), "backend_config.kernel" },
        { "kernel via ..", Mutate(QemuMetadata, d => d["backend_config"]!["kernel"] = "../../vmlinux"), "backend_config.kernel" },
        { "initramfs outside", Mutate(QemuMetadata, d => d["backend_config"]!["initrd"] = "/boot/initrd.img"), "backend_config.initrd" },
        { "vmstate elsewhere", Mutate(QemuMetadata, d => d["vmstate"] = "/etc/shadow"), "vmstate" },
        { "memory via ..", Mutate(QemuMetadata, d => d["memory"] = "../memory.bin"), "memory" },
        { "memory is a device", Mutate(QemuMetadata, d => d["memory"] = "/dev/mem"), "memory" },
        { "firecracker backend-config host path", Mutate(FirecrackerMetadata, d => Drive(d, 0)["hostPath"] = "/srv/images/rootfs.ext4"), "backend_config.drives[0].hostPath" },
        { "firecracker backend-config path via ..", Mutate(FirecrackerMetadata, d => Drive(d, 0)["hostPath"] = "../../rootfs.ext4"), "backend_config.drives[0].hostPath" },
    };

    [Theory]
    [MemberData(nameof(UnsafeVariants))]
    public void Metadata_naming_host_resources_is_refused_naming_the_field(string variant, string json, string field)
    {
        var ex = Assert.Throws<ForkdException>(() => Import(Pack(json)));
        Assert.True(ex.ErrorId == "PackUnsafeMetadata", $"{variant}: got {ex.ErrorId}: {ex.Message}");
        Assert.Contains($"'{field}'", ex.Message, StringComparison.Ordinal);
        AssertNothingInstalled();
    }

    public static TheoryData<string, string> SchemaVariants() => new()
    {
        { """{"vmstate":"vmstate","memory":"memory.bin","volumes":5}""", "volumes" },
        { """{"vmstate":"vmstate","memory":"memory.bin","volumes":[{"host_path":1,"guest_path":"/x"}]}""", "volumes[0].host_path" },
        { """{"vmstate":"vmstate","memory":"memory.bin","volumes":[{"guest_path":"relative"}]}""", "volumes[0].guest_path" },
        { """{"vmstate":"vmstate","memory":"memory.bin","volumes":[{"guest_path":"/x","mode":"rw"}]}""", "volumes[0].mode" },
        { """{"vmstate":7,"memory":"memory.bin"}""", "vmstate" },
        { """{"vmstate":"vmstate","memory":"memory.bin","memory_mib":"lots"}""", "memory_mib" },
        { """{"vmstate":"vmstate","memory":"memory.bin","vcpu_count":0}""", "vcpu_count" },
        { """{"vmstate":"vmstate","memory":"memory.bin","backend":"docker"}""", "backend" },
        { """{"vmstate":"vmstate","memory":"memory.bin","created_at":"yesterday"}""", "created_at" },
        { """{"vmstate":"vmstate","memory":"memory.bin","evil":true}""", "evil" },
        { """{"vmstate":"vmstate","memory":"memory.bin","backend":"qemu","backend_config":{"machine":"m","kernel":"vmlinux","append":"a","drives":{}}}""", "backend_config.drives" },
        { """{"vmstate":"vmstate","memory":"memory.bin","backend":"qemu","backend_config":{"machine":"m","kernel":"vmlinux","append":"a","extra_disk":"/etc/shadow"}}""", "backend_config.extra_disk" },
        { """{"vmstate":"vmstate","memory":"memory.bin","backend":"qemu","backend_config":{"machine":"m","append":"a"}}""", "backend_config.kernel" },
        { """[1,2,3]""", "(document)" },
        { """{"vmstate":"vmstate","memory":"memory.bin",""", "(document)" },
        { """{"vmstate":"vmstate","vmstate":"/etc/shadow","memory":"memory.bin"}""", "(document)" },
    };

    [Theory]
    [MemberData(nameof(SchemaVariants))]
    public void Metadata_with_wrong_types_or_unknown_keys_is_refused_before_install(string json, string field)
    {
        var ex = Assert.Throws<ForkdException>(() => Import(Pack(json)));
        Assert.Equal("SnapshotMetadataInvalid", ex.ErrorId);
        Assert.Contains($"'{field}'", ex.Message, StringComparison.Ordinal);
        AssertNothingInstalled();
    }

    [Fact]
    public void A_bad_pack_imported_with_force_never_replaces_a_good_snapshot()
    {
        var good = Import(Pack(QemuMetadata().ToJsonString()));
        var before = File.ReadAllText(Path.Combine(good.Path, "snapshot.json"));
        foreach (var bad in new[] { """{"vmstate":"vmstate","memory":"memory.bin","volumes":5}""", Mutate(QemuMetadata, d => Drive(d, 0)["path"] = "/dev/sda") })
        {
            Assert.Throws<ForkdException>(() => Import(Pack(bad), new ImportOptions { Force = true }));
            var still = new SnapshotStore(_box.Paths).Get("good");
            Assert.Equal(before, File.ReadAllText(Path.Combine(still.Path, "snapshot.json")));
            Assert.Empty(HubSandbox.Leftovers(_box.Paths));
        }
    }

    [Fact]
    public void Volume_host_paths_are_dropped_at_import_and_forking_them_unbound_is_refused()
    {
        var doc = QemuMetadata();
        doc["volumes"]![0]!["host_path"] = "/etc/passwd";
        Drive(doc, 1)["path"] = "/etc/passwd";
        var snap = Import(Pack(doc.ToJsonString()));
        var text = File.ReadAllText(Path.Combine(snap.Path, "snapshot.json"));
        Assert.DoesNotContain("/etc/passwd", text, StringComparison.Ordinal);
        var volume = Assert.Single(snap.Metadata.Volumes);
        Assert.Equal("/opt/cache", volume.GuestPath);
        Assert.Equal("", volume.HostPath);
        var ex = Assert.Throws<ForkdException>(() => SnapshotMetadataSafety.RequireVolumesBound(snap.Metadata, snap.Tag));
        Assert.Equal("VolumeUnbound", ex.ErrorId);
        Assert.Contains("/opt/cache", ex.Message, StringComparison.Ordinal);
        Assert.Contains("-Volume", ex.Hint, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_engine_refuses_to_fork_an_imported_snapshot_whose_volume_is_unbound()
    {
        Import(Pack(QemuMetadata().ToJsonString()));
        var engine = new Forkd.Core.Engine.ForkdEngine(_box.Paths);
        var ex = await Assert.ThrowsAsync<ForkdException>(() => engine.ForkAsync(new Forkd.Core.Engine.ForkRequest { Tag = "good", Count = 1 }, null, default));
        Assert.Equal("VolumeUnbound", ex.ErrorId);
        Assert.Empty(engine.Children.List());
    }

    [Fact]
    public void A_volume_bound_at_import_uses_the_users_host_file_in_metadata_and_drive()
    {
        var host = Path.Combine(_box.Root, "mine.img");
        File.WriteAllBytes(host, new byte[4096]);
        var snap = Import(Pack(QemuMetadata().ToJsonString()), new ImportOptions { Volumes = [new VolumeSpec(host, "/opt/cache", ReadOnly: true)] });
        var volume = Assert.Single(snap.Metadata.Volumes);
        Assert.Equal(host, volume.HostPath);
        Assert.True(volume.ReadOnly);
        Assert.Equal(host, (string?)snap.Metadata.BackendConfig!["drives"]![1]!["path"]);
        Assert.DoesNotContain("/var/lib/forkd", File.ReadAllText(Path.Combine(snap.Path, "snapshot.json")), StringComparison.Ordinal);
        SnapshotMetadataSafety.RequireVolumesBound(snap.Metadata, snap.Tag); // does not throw
    }

    [Fact]
    public void A_binding_for_a_volume_the_snapshot_does_not_have_is_refused()
    {
        var ex = Assert.Throws<ForkdException>(() => Import(Pack(QemuMetadata().ToJsonString()), new ImportOptions { Volumes = [new VolumeSpec("/tmp/x.img", "/elsewhere")] }));
        Assert.Equal("VolumeBindingUnknown", ex.ErrorId);
        AssertNothingInstalled();
    }

    [Fact]
    public void A_forkd_made_snapshot_json_with_another_hosts_absolute_paths_still_imports()
    {
        var json = """
            {
              "vmstate": "/home/u/.local/share/forkd/snapshots/pyagent/vmstate",
              "memory": "/home/u/.local/share/forkd/snapshots/pyagent/memory.bin",
              "volumes": [
                { "host_path": "/var/lib/forkd/vol/pyagent.img", "guest_path": "/opt/cache", "read_only": false }
              ]
            }
            """;
        var snap = Import(Pack(json));
        Assert.Equal("vmstate", snap.Metadata.VmState);
        Assert.Equal("memory.bin", snap.Metadata.Memory);
        Assert.Equal("", Assert.Single(snap.Metadata.Volumes).HostPath);
        Assert.DoesNotContain("/home/u", File.ReadAllText(Path.Combine(snap.Path, "snapshot.json")), StringComparison.Ordinal);
    }

    [Fact]
    public void Our_own_qemu_and_firecracker_metadata_imports()
    {
        Assert.True(Import(Pack(QemuMetadata().ToJsonString())).IsComplete);
        Assert.True(Import(Pack(FirecrackerMetadata().ToJsonString()), new ImportOptions { Tag = "fc" }).IsComplete);
    }

    private void AssertNothingInstalled()
    {
        var snapshots = _box.Paths.SnapshotsDirectory;
        Assert.True(!Directory.Exists(snapshots) || Directory.GetFileSystemEntries(snapshots).Length == 0, "a tag was installed");
        Assert.Empty(HubSandbox.Leftovers(_box.Paths));
    }
}
