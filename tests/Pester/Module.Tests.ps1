# Conventions every exported cmdlet must follow, checked on the built module as users load it.
BeforeDiscovery {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $stateVerbs = 'New', 'Remove', 'Set', 'Import', 'Export', 'Invoke', 'Stop', 'Start', 'Publish', 'Initialize', 'Build', 'Clear', 'Checkpoint', 'Suspend', 'Resume', 'Merge'
    $script:commands = Get-Command -Module Forkd -CommandType Cmdlet | ForEach-Object {
        @{ Name = $_.Name; ChangesState = $_.Verb -in $stateVerbs }
    }
}

BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
}

Describe 'The Forkd module' -Tag Module {
    It 'loads from its manifest as a binary module for PowerShell Core' {
        $m = Get-Module Forkd
        $m.ModuleType | Should -Be 'Binary'
        $m.CompatiblePSEditions | Should -Contain 'Core'
        Test-ModuleManifest -Path $env:FORKD_MODULE_PATH | Should -Not -BeNullOrEmpty
    }

    It 'exports every cmdlet the assembly implements, and the manifest lists exactly those' {
        # Read the cmdlet classes from the DLL itself: Get-Command only sees what the manifest lets through.
        $manifest = Import-PowerShellDataFile $env:FORKD_MODULE_PATH
        $dll = Join-Path (Split-Path $env:FORKD_MODULE_PATH) 'Forkd.PowerShell.dll'
        $implemented = [System.Reflection.Assembly]::LoadFrom($dll).GetExportedTypes() |
            ForEach-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
            ForEach-Object { "$($_.VerbName)-$($_.NounName)" }
        @($implemented | Sort-Object) | Should -Be @($manifest.CmdletsToExport | Sort-Object)
        @((Get-Command -Module Forkd -CommandType Cmdlet).Name | Sort-Object) | Should -Be @($implemented | Sort-Object)
    }

    It 'carries one version: the manifest''s, in every assembly' {
        $manifest = Import-PowerShellDataFile $env:FORKD_MODULE_PATH
        $dir = Split-Path $env:FORKD_MODULE_PATH
        foreach ($name in 'Forkd.PowerShell.dll', 'Forkd.Core.dll') {
            $version = [System.Reflection.AssemblyName]::GetAssemblyName((Join-Path $dir $name)).Version
            "$($version.Major).$($version.Minor).$($version.Build)" | Should -Be $manifest.ModuleVersion
        }
    }

    It 'states the PowerShell it really loads in: 7.6, whose runtime is the assemblies'' net10.0' {
        $manifest = Import-PowerShellDataFile $env:FORKD_MODULE_PATH
        [version]$manifest.PowerShellVersion | Should -Be ([version]'7.6')
        $PSVersionTable.PSVersion | Should -BeGreaterOrEqual ([version]$manifest.PowerShellVersion)
        $target = [System.Reflection.Assembly]::LoadFrom((Join-Path (Split-Path $env:FORKD_MODULE_PATH) 'Forkd.Core.dll')).GetCustomAttributes(
            [System.Runtime.Versioning.TargetFrameworkAttribute], $false)[0].FrameworkName
        $target | Should -Be '.NETCoreApp,Version=v10.0'
    }

    It 'has an about_Forkd topic that names every cmdlet' {
        $about = Get-Help about_Forkd | Out-String
        $about | Should -Match 'fork'
        foreach ($name in (Get-Command -Module Forkd -CommandType Cmdlet).Name) { $about | Should -Match "\b$name\b" -Because 'about_Forkd names every cmdlet' }
    }

    It 'carries ProjectUri, ReleaseNotes and HelpInfoURI in its manifest' {
        $manifest = Import-PowerShellDataFile $env:FORKD_MODULE_PATH
        $manifest.PrivateData.PSData.ProjectUri | Should -Match '^https://'
        $manifest.PrivateData.PSData.ReleaseNotes | Should -Not -BeNullOrEmpty
        $manifest.HelpInfoURI | Should -Match '^https://'
    }
}

Describe '<Name> conventions' -Tag Module -ForEach $commands {
    BeforeAll {
        $cmd = Get-Command $Name
        $type = $cmd.ImplementingType
        $attr = $type.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0]
        $help = Get-Help $Name -Full
    }

    It 'uses an approved verb' {
        (Get-Verb).Verb | Should -Contain $cmd.Verb
    }

    It 'declares its output type' {
        $type.GetCustomAttributes([System.Management.Automation.OutputTypeAttribute], $false) | Should -Not -BeNullOrEmpty
    }

    It 'supports ShouldProcess exactly when its verb changes state' {
        $attr.SupportsShouldProcess | Should -Be $ChangesState
    }

    It 'has a synopsis and a description' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match "^\s*$Name\s"   # the auto-generated placeholder is the syntax line
        ($help.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code' {
        @($help.Examples.Example).Count | Should -BeGreaterThan 0
        $help.Examples.Example[0].Code | Should -Match 'Forkd'
    }

    It 'has platyPS-style syntax: [-WhatIf] [-Confirm], [-Switch], Int64 not Nullable, defaults filled in' {
        $syntax = (Get-Help $Name).Syntax | Out-String -Width 400
        $syntax | Should -Not -Match 'SwitchParameter'
        $syntax | Should -Not -Match 'Nullable'
        if ($ChangesState) {
            $syntax | Should -Match '\[-WhatIf\] \[-Confirm\]'
            (Get-Help $Name -Parameter WhatIf).Name | Should -Be 'WhatIf'
        }
        foreach ($p in @($help.Parameters.Parameter | Where-Object { $_ })) { $p.DefaultValue | Should -Not -BeNullOrEmpty -Because "-$($p.Name) states its default" }
    }

    It 'links to its online help page: the repository page under the one project address' {
        $cmd.HelpUri | Should -Match "^https://.+/docs/cmdlets/$Name\.md$"
        $project = (Import-PowerShellDataFile -LiteralPath $env:FORKD_MODULE_PATH).PrivateData.PSData.ProjectUri
        $cmd.HelpUri | Should -BeExactly "$project/blob/main/docs/cmdlets/$Name.md"
        # The page it names is in this repository's layout.
        Join-Path $PSScriptRoot "../../docs/cmdlets/$Name.md" | Should -Exist
        ($help.RelatedLinks.NavigationLink | Where-Object LinkText -eq 'Online Version:').Uri | Should -Be $cmd.HelpUri
    }

    It 'needs no prompt in its examples: every example that removes or stops things says -Confirm:$false or -WhatIf' {
        foreach ($code in @($help.Examples.Example.Code)) {
            foreach ($line in $code -split "`n" | Where-Object { $_ -match '\b(Remove|Stop)-Forkd\w+' -and $_ -notmatch 'Get-Help' }) {
                $impact = (Get-Command ([regex]::Match($line, '(Remove|Stop)-Forkd\w+').Value)).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact
                if ($impact -eq 'High') { $line | Should -Match '-Confirm:\$false|-WhatIf' -Because "a High-impact example prompts: $line" }
            }
        }
    }

    It 'describes every parameter' {
        $common = [System.Management.Automation.Cmdlet]::CommonParameters + [System.Management.Automation.Cmdlet]::OptionalCommonParameters
        foreach ($p in $cmd.Parameters.Keys | Where-Object { $_ -notin $common }) {
            $entry = $help.Parameters.Parameter | Where-Object Name -eq $p
            ($entry.Description | Out-String).Trim() | Should -Not -BeNullOrEmpty -Because "-$p needs a description"
        }
    }
}
