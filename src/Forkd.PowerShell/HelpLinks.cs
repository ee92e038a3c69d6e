namespace Forkd.PowerShell;

/// <summary>Where each cmdlet's online help lives (Get-Help -Online): its docs/cmdlets page. tools/New-ForkdHelp.ps1 checks it.</summary>
internal static class HelpLinks
{
    public const string Base = "https://github.com/forkd-project/Forkd/blob/main/docs/cmdlets/";
}
