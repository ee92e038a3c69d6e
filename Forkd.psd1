@{
    RootModule           = 'Forkd.PowerShell.dll'
    ModuleVersion        = '0.2.0'
    GUID                 = '5f0c7a4e-2d1b-4f3e-9a6c-7e1d2b8c4a90'
    Author               = 'Forkd contributors'
    CompanyName          = 'Forkd'
    Copyright            = '(c) Forkd contributors. Apache-2.0.'
    Description          = 'Fork many microVM sandboxes from one warmed parent VM: snapshots, copy-on-write children, packs.'
    CompatiblePSEditions = @('Core')
    PowerShellVersion    = '7.6'
    FormatsToProcess     = @('Forkd.Format.ps1xml')
    # The engine's types load first: Forkd.Types.ps1xml names its enums.
    RequiredAssemblies   = @('Forkd.Core.dll')
    TypesToProcess       = @('Forkd.Types.ps1xml')
    CmdletsToExport      = @(
        'Build-ForkdImage'
        'Checkpoint-ForkdChild'
        'Export-ForkdPack'
        'Get-ForkdChild'
        'Get-ForkdDataDirectory'
        'Get-ForkdImage'
        'Get-ForkdSnapshot'
        'Import-ForkdPack'
        'Invoke-ForkdEval'
        'Invoke-ForkdExec'
        'Invoke-ForkdFork'
        'Merge-ForkdSnapshot'
        'New-ForkdSnapshot'
        'Publish-ForkdPack'
        'Remove-ForkdImage'
        'Remove-ForkdSnapshot'
        'Remove-ForkdStaleWorkDir'
        'Resume-ForkdChild'
        'Start-ForkdSandbox'
        'Start-ForkdController'
        'Start-ForkdMcpServer'
        'Stop-ForkdChild'
        'Suspend-ForkdChild'
        'Test-ForkdAgent'
        'Test-ForkdHost'
        'Initialize-ForkdNetwork'
        'Remove-ForkdNetwork'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @('New-ForkdChild')
    PrivateData          = @{
        PSData = @{
            Tags         = @('PSEdition_Core', 'Linux', 'microVM', 'QEMU', 'Firecracker', 'sandbox')
            LicenseUri   = 'https://www.apache.org/licenses/LICENSE-2.0'
            # The address the repository is to be published at (README, "Help"): HelpInfoURI and every cmdlet's
            # HelpUri (src/Forkd.PowerShell/HelpLinks.cs) are under it; tools/New-ForkdHelp.ps1 fails on any drift.
            ProjectUri   = 'https://github.com/forkd-project/Forkd'
            ReleaseNotes = @'
0.2.0: result objects pipe back into every child and tag parameter; -Id takes wildcards; guest failures
are error records (GuestEvalFailed, GuestExecFailed; -NoGuestError opts out); one bad pipeline item no
longer stops the rest; live tab completion; 80-column views named after real properties; platyPS-grade
help with online links; packaged as a .nupkg for PSResourceGet.
'@
        }
    }
    # Update-Help looks here for HelpInfo.xml; the cmdlets' HelpUri points at docs/cmdlets/<Cmdlet>.md beside it.
    HelpInfoURI          = 'https://github.com/forkd-project/Forkd/tree/main/docs/'
}
