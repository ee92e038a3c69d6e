using System.Text.Json;
using Forkd.Core.Host;
using Forkd.Core.Store;
using Forkd.Core.Vmm;
using Xunit;

namespace Forkd.Core.Tests.Vmm;

/// <summary>
/// Result objects carry Backend and Accelerator as the enums the parameters take (issue 11.6), while
/// snapshot.json and the child registry keep forkd's lower-case names.
/// </summary>
public sealed class VmmNamesTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static ForkdChild Child(BackendKind backend, Accelerator accelerator) => new()
    {
        Id = "py-0123abcd",
        Tag = "py",
        Backend = backend,
        Accelerator = accelerator,
        Agent = new AgentEndpoint(AgentTransport.Unix, "/tmp/x/agent.sock"),
        WorkDirectory = "/tmp/x",
    };

    [Fact]
    public void A_child_record_writes_lower_case_names_and_reads_them_back_as_enums()
    {
        var json = JsonSerializer.Serialize(Child(BackendKind.Firecracker, Accelerator.Kvm));

        Assert.Contains("\"backend\":\"firecracker\"", json, StringComparison.Ordinal);
        Assert.Contains("\"accelerator\":\"kvm\"", json, StringComparison.Ordinal);
        var back = JsonSerializer.Deserialize<ForkdChild>(json)!;
        Assert.Equal(BackendKind.Firecracker, back.Backend);
        Assert.Equal(Accelerator.Kvm, back.Accelerator);
    }

    [Fact]
    public void A_child_record_of_any_case_reads_and_a_number_is_refused()
    {
        var json = JsonSerializer.Serialize(Child(BackendKind.Qemu, Accelerator.Tcg));
        var upper = json.Replace("\"qemu\"", "\"QEMU\"", StringComparison.Ordinal).Replace("\"tcg\"", "\"Tcg\"", StringComparison.Ordinal);

        var back = JsonSerializer.Deserialize<ForkdChild>(upper)!;

        Assert.Equal(BackendKind.Qemu, back.Backend);
        Assert.Equal(Accelerator.Tcg, back.Accelerator);
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize<ForkdChild>(json.Replace("\"qemu\"", "1", StringComparison.Ordinal)));
    }

    [Fact]
    public void Snapshots_list_enums_from_metadata_names_of_any_case_and_forkds_own_are_firecracker()
    {
        var paths = new ForkdPaths(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "tmp"));
        foreach (var (tag, backend, accelerator) in new[] { ("ours", "qemu", "tcg"), ("fc", "firecracker", "kvm"), ("upper", "QEMU", "KVM"), ("forkd", null, null) })
        {
            var dir = Path.Combine(paths.SnapshotsDirectory, tag);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, "vmstate"), new byte[16]);
            File.WriteAllBytes(Path.Combine(dir, "memory.bin"), new byte[4096]);
            if (tag != "forkd")
            {
                new SnapshotMetadata { Backend = backend, Accelerator = accelerator }.Save(dir);
            }
        }

        var problems = new List<ForkdException>();
        var all = new SnapshotStore(paths).List(problems: problems).ToDictionary(s => s.Tag);

        Assert.Empty(problems.Select(p => p.Message));

        Assert.Equal(BackendKind.Qemu, all["ours"].Backend);
        Assert.Equal(Accelerator.Tcg, all["ours"].Accelerator);
        Assert.Equal(BackendKind.Firecracker, all["fc"].Backend);
        Assert.Equal(Accelerator.Kvm, all["fc"].Accelerator);
        Assert.Equal(BackendKind.Qemu, all["upper"].Backend);
        Assert.Equal(Accelerator.Kvm, all["upper"].Accelerator);
        Assert.Equal(BackendKind.Firecracker, all["forkd"].Backend); // forkd's own snapshots are Firecracker's
        Assert.Null(all["forkd"].Accelerator);
        Assert.Contains("\"backend\": \"qemu\"", File.ReadAllText(Path.Combine(paths.SnapshotsDirectory, "ours", "snapshot.json")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("qemu", BackendKind.Qemu)]
    [InlineData("Firecracker", BackendKind.Firecracker)]
    public void Names_parse_in_any_case(string name, BackendKind expected) => Assert.Equal(expected, VmmNames.ParseBackend(name));

    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    [InlineData("qemu, firecracker")]
    [InlineData("")]
    [InlineData(null)]
    public void Numbers_lists_and_nothing_are_no_backend(string? name) => Assert.Null(VmmNames.ParseBackend(name));

    [Fact]
    public void Names_are_forkds_lower_case_spelling()
    {
        Assert.Equal("qemu", VmmNames.Of(BackendKind.Qemu));
        Assert.Equal("firecracker", VmmNames.Of(BackendKind.Firecracker));
        Assert.Equal("kvm", VmmNames.Of(Accelerator.Kvm));
        Assert.Equal("tcg", VmmNames.Of(Accelerator.Tcg));
    }
}
