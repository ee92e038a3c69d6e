namespace Forkd.PowerShell;

/// <summary>
/// Where each cmdlet's online help lives (Get-Help -Online): its docs/cmdlets page in the repository.
/// <see cref="ProjectUri"/> is the one project address: the address the repository is to be published at (no
/// public copy exists yet; README "Help" says so). Forkd.psd1's ProjectUri and HelpInfoURI name the same address,
/// and tools/New-ForkdHelp.ps1 fails the build when any of them differs.
/// </summary>
internal static class HelpLinks
{
    public const string ProjectUri = "https://github.com/forkd-project/Forkd";

    /// <summary>docs/cmdlets/ on the main branch; each cmdlet's HelpUri is this plus <c>&lt;Cmdlet&gt;.md</c>.</summary>
    public const string Base = ProjectUri + "/blob/main/docs/cmdlets/";
}
