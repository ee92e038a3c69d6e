namespace Forkd.Core.Vmm;

/// <summary>What the user asked for: <c>Auto</c> lets a booting guest decide.</summary>
public enum AcceleratorPreference
{
    Auto,
    Kvm,
    Tcg,
}

/// <summary>The accelerator chosen and why, shown to the user and recorded in the snapshot.</summary>
public sealed record AcceleratorChoice(Accelerator Accelerator, string Reason, bool FromCache = false);
