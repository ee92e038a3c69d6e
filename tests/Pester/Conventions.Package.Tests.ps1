# Packaging (issue 11.9): the module's .nupkg, as build.ps1 Package makes it, publishes to a local PSResourceGet
# repository, installs with Install-PSResource and is used by name from a new pwsh. Everything PSResourceGet
# writes (its repository list, the installed module) goes under a scratch HOME, so nothing of the user's or of
# other runs is touched.
Describe 'The module package' -Tag Conventions, Module, Package {
    BeforeAll {
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        $moduleDir = Split-Path $env:FORKD_MODULE_PATH
        $script:version = (Import-PowerShellDataFile $env:FORKD_MODULE_PATH).ModuleVersion
        $script:scratchHome = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'home')).FullName
        $script:repo = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'repo')).FullName
        # The package build.ps1 Package wrote beside the module when it is current; else the same call here.
        $built = Join-Path (Split-Path $moduleDir) "Forkd.$version.nupkg"
        if ((Test-Path $built) -and (Get-Item $built).LastWriteTime -ge (Get-Item (Join-Path $moduleDir 'Forkd.PowerShell.dll')).LastWriteTime) {
            $script:nupkg = $built
        } else {
            $staging = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'pack')).FullName
            Compress-PSResource -Path $moduleDir -DestinationPath $staging
            $script:nupkg = (Get-ChildItem $staging -Filter "Forkd.$version.nupkg").FullName
        }

        # Runs a script in a fresh pwsh whose HOME (and so PSResourceGet's state and CurrentUser scope) is scratch.
        function Invoke-ScratchPwsh([string] $Script) {
            $saved = $env:HOME, $env:XDG_DATA_HOME, $env:XDG_CONFIG_HOME, $env:PSModulePath
            try {
                $env:HOME = $script:scratchHome; $env:XDG_DATA_HOME = $null; $env:XDG_CONFIG_HOME = $null; $env:PSModulePath = $null
                $out = & $script:pwsh -NoProfile -NonInteractive -Command "`$ErrorActionPreference = 'Stop'; $Script" 2>&1
                [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($out | Out-String) }
            } finally {
                $env:HOME, $env:XDG_DATA_HOME, $env:XDG_CONFIG_HOME, $env:PSModulePath = $saved
            }
        }
    }

    It 'is a .nupkg named after the module and its version, with the manifest''s metadata' {
        $nupkg | Should -Exist
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [System.IO.Compression.ZipFile]::OpenRead($nupkg)
        try {
            $names = $zip.Entries.FullName
            $names | Should -Contain 'Forkd.psd1'
            $names | Should -Contain 'Forkd.PowerShell.dll'
            $names | Should -Contain 'en-US/Forkd.PowerShell.dll-Help.xml'
            $names | Should -Contain 'guest/forkd-init'
            $reader = [IO.StreamReader]::new(($zip.Entries | Where-Object FullName -eq 'Forkd.nuspec').Open())
            $nuspec = [xml]$reader.ReadToEnd(); $reader.Dispose()
        } finally { $zip.Dispose() }
        $nuspec.package.metadata.id | Should -Be 'Forkd'
        $nuspec.package.metadata.version | Should -Be $version
        $nuspec.package.metadata.projectUrl | Should -Not -BeNullOrEmpty
        $nuspec.package.metadata.releaseNotes | Should -Not -BeNullOrEmpty
        $manifest = Import-PowerShellDataFile $env:FORKD_MODULE_PATH
        $manifest.HelpInfoURI | Should -Match '^https://'
        $manifest.PrivateData.PSData.ProjectUri | Should -Be $nuspec.package.metadata.projectUrl
    }

    It 'publishes to a local repository, installs with Install-PSResource and is used by name from a new pwsh' {
        $install = Invoke-ScratchPwsh @"
Register-PSResourceRepository -Name ForkdLocal -Uri '$repo' -Trusted
Publish-PSResource -NupkgPath '$nupkg' -Repository ForkdLocal
Install-PSResource -Name Forkd -Repository ForkdLocal -Scope CurrentUser -TrustRepository -Quiet
(Get-InstalledPSResource -Name Forkd).Version.ToString()
"@
        $install.ExitCode | Should -Be 0 -Because $install.Output
        $install.Output | Should -Match ([regex]::Escape($version))
        Get-ChildItem $repo -Filter "Forkd.$version.nupkg" | Should -Not -BeNullOrEmpty

        $use = Invoke-ScratchPwsh @"
`$env:FORKD_DATA_DIR = '$(Join-Path $TestDrive data)'
Import-Module Forkd
`$m = Get-Module Forkd
`$m.ModuleBase
(Get-Command -Module Forkd -CommandType Cmdlet).Count
(Get-ForkdDataDirectory).DataDirectory
(Get-Item (Join-Path `$m.ModuleBase 'guest/forkd-init')).UnixMode
(Get-Help Invoke-ForkdFork).Synopsis
"@
        $use.ExitCode | Should -Be 0 -Because $use.Output
        $lines = $use.Output -split "`n" | ForEach-Object Trim | Where-Object { $_ }
        $lines[0] | Should -BeLike "$scratchHome/*Forkd*$version"
        [int]$lines[1] | Should -Be (Import-PowerShellDataFile $env:FORKD_MODULE_PATH).CmdletsToExport.Count
        $lines[2] | Should -Be (Join-Path $TestDrive data)
        # The package format drops Unix modes; the module puts the exec bit back on import.
        $lines[3] | Should -Be (Get-Item (Join-Path (Split-Path $env:FORKD_MODULE_PATH) 'guest/forkd-init')).UnixMode
        $lines[3] | Should -Match '^-rwx'
        $lines[4] | Should -Match 'children'
    }
}
