using System.Text.Json;
using System.Text.Json.Serialization;

namespace Forkd.Core;

// Vocabulary of every layer (the store records them, backends run them), so below all of them: the root namespace.

/// <summary>Which hypervisor runs a VM. Recorded in the snapshot; children always use the parent's.</summary>
public enum BackendKind
{
    Qemu,
    Firecracker,
}

/// <summary>How guest code runs: hardware virtualisation (KVM) or QEMU's software CPU (TCG).</summary>
public enum Accelerator
{
    Kvm,
    Tcg,
}

/// <summary>
/// The lower-case names backends and accelerators have in files and on the wire (snapshot.json, the child registry,
/// the REST API): <c>qemu</c>, <c>firecracker</c>, <c>kvm</c>, <c>tcg</c>. Objects carry the enums, as the
/// parameters do; these convert at the edges.
/// </summary>
public static class VmmNames
{
    public static string Of(BackendKind kind) => kind.ToString().ToLowerInvariant();

    public static string Of(Accelerator accelerator) => accelerator.ToString().ToLowerInvariant();

    /// <summary>The backend a recorded name means (any case), or null for a name this module does not know.</summary>
    public static BackendKind? ParseBackend(string? name) => Parse<BackendKind>(name);

    /// <summary>The accelerator a recorded name means (any case), or null for none or an unknown one.</summary>
    public static Accelerator? ParseAccelerator(string? name) => Parse<Accelerator>(name);

    // Names only: Enum.TryParse would also take "1" or "Qemu, Firecracker".
    private static T? Parse<T>(string? name)
        where T : struct, Enum =>
        !string.IsNullOrEmpty(name) && name.All(char.IsAsciiLetter) && Enum.TryParse<T>(name, ignoreCase: true, out var value) ? value : null;
}

/// <summary>Writes an enum as its lower-case name (forkd's spelling) and reads any case; numbers are refused.</summary>
public sealed class LowerCaseEnumConverter<T>() : JsonStringEnumConverter<T>(LowerCaseNames.Policy, allowIntegerValues: false)
    where T : struct, Enum;

internal sealed class LowerCaseNames : JsonNamingPolicy
{
    public static readonly LowerCaseNames Policy = new();

    public override string ConvertName(string name) => name.ToLowerInvariant();
}
