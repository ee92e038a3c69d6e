using ArchUnitNET.Domain;
using ArchUnitNET.Fluent;
using ArchUnitNET.Loader;
using static ArchUnitNET.Fluent.ArchRuleDefinition;

namespace Forkd.Core.Tests;

/// <summary>
/// The engine's namespaces form one direction: Host at the bottom, Store above it, then Vmm, Guest and Hub,
/// then Engine (the composition root) on top; PowerShell types never enter the engine; backend folders are
/// reached only through the catalogue. Each rule names the namespaces a layer must not use.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1859", Justification = "rules are built once per test")]
public sealed class LayeringTests
{
    private static readonly Architecture Engine = new ArchLoader().LoadAssemblies(typeof(ForkdException).Assembly).Build();

    private static IObjectProvider<IType> In(string ns) =>
        Types().That().ResideInNamespaceMatching($@"^Forkd\.Core\.{ns.Replace(".", @"\.", StringComparison.Ordinal)}(\..*)?$").As($"Forkd.Core.{ns}");

    public static TheoryData<string, string[]> ForbiddenDependencies => new()
    {
        { "Host", ["Store", "Vmm", "Guest", "Hub", "Engine"] },
        { "Store", ["Vmm", "Guest", "Hub", "Engine"] },
        { "Guest", ["Vmm", "Hub", "Engine"] },
        { "Hub", ["Vmm", "Guest", "Engine"] },
        { "Vmm", ["Hub", "Engine"] },
        { "Engine", ["Vmm.Qemu", "Vmm.Firecracker"] },
        { "Text", ["Host", "Store", "Vmm", "Guest", "Hub", "Engine"] },
    };

    [Theory]
    [MemberData(nameof(ForbiddenDependencies))]
    public void A_layer_does_not_depend_on_the_layers_above_it(string layer, string[] forbidden)
    {
        foreach (var other in forbidden)
        {
            var rule = Types().That().Are(In(layer)).Should().NotDependOnAny(In(other)).Because($"{layer} sits below {other}");
            AssertHolds(rule);
        }
    }

    [Fact]
    public void Only_the_catalogue_names_a_concrete_backend_outside_its_folder()
    {
        foreach (var backend in new[] { "Vmm.Qemu", "Vmm.Firecracker" })
        {
            var rule = Types().That().ResideInNamespaceMatching(@"^Forkd\.Core(\..*)?$")
                .And().AreNot(In(backend)).And().DoNotHaveFullName("Forkd.Core.Vmm.BackendCatalog")
                .Should().NotDependOnAny(In(backend)).Because("backends are reached through BackendCatalog and IVmmBackend");
            AssertHolds(rule);
        }
    }

    [Fact]
    public void The_engine_references_no_PowerShell_assembly()
    {
        var references = typeof(ForkdException).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.DoesNotContain(references, n => n is not null && n.StartsWith("System.Management.Automation", StringComparison.Ordinal));
        Assert.DoesNotContain(references, n => n is not null && n.StartsWith("Microsoft.PowerShell", StringComparison.Ordinal));
    }

    private static void AssertHolds(IArchRule rule)
    {
        var violations = rule.Evaluate(Engine).Where(r => !r.Passed).Select(r => r.Description).ToList();
        Assert.True(violations.Count == 0, $"{rule.Description}:\n  " + string.Join("\n  ", violations));
    }
}
