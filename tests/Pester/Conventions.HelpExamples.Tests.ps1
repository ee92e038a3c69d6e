# Every example in the help (docs/cmdlets/*.md, as Get-Help shows them) runs non-interactively in a scratch data
# dir and fails on any error or prompt (issue 11.8). Each page gets the setup its examples assume (a snapshot
# 'py' with warm state, 'pyagent', a running child, a pack file); pages run in an order where each leaves what
# the next needs. Examples whose effect reaches outside this test's own dirs run under -WhatIf, each with the
# reason below: they still parse, bind and validate, but change nothing shared. Budget: ~4 min on 2 cores.
BeforeDiscovery {
    $order = 'Test-ForkdHost', 'Get-ForkdDataDirectory', 'Get-ForkdImage', 'Build-ForkdImage', 'New-ForkdSnapshot',
        'Get-ForkdSnapshot', 'Invoke-ForkdFork', 'Get-ForkdChild', 'Invoke-ForkdEval', 'Invoke-ForkdExec', 'Test-ForkdAgent',
        'Checkpoint-ForkdChild', 'Suspend-ForkdChild', 'Resume-ForkdChild', 'Merge-ForkdSnapshot',
        'Stop-ForkdChild', 'Export-ForkdPack', 'Import-ForkdPack', 'Publish-ForkdPack', 'Start-ForkdSandbox',
        'Remove-ForkdStaleWorkDir', 'Remove-ForkdImage', 'Initialize-ForkdNetwork', 'Remove-ForkdNetwork', 'Remove-ForkdSnapshot'
    Import-Module $env:FORKD_MODULE_PATH -Force
    $all = (Get-Command -Module Forkd -CommandType Cmdlet).Name
    $script:pages = foreach ($name in $order + @($all | Where-Object { $_ -notin $order } | Sort-Object)) {
        $examples = @((Get-Help $name).examples.example)
        @{ Name = $name; Examples = @(for ($i = 0; $i -lt $examples.Count; $i++) { @{ Number = $i + 1; Code = $examples[$i].code } }) }
    }
}

BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:saved = @{ Data = $env:FORKD_DATA_DIR; Tmp = $env:TMPDIR; Hub = $env:FORKD_HUB_URL }
    # Not $TestDrive: Pester removes what a Describe block created there when the block ends, and the pages
    # (one Describe each) hand snapshots, children and packs on to each other.
    $script:scratch = [IO.Directory]::CreateTempSubdirectory('forkd-helpex-').FullName
    $env:FORKD_DATA_DIR = Join-Path $scratch 'data'
    # Work dirs too: Remove-ForkdStaleWorkDir must only ever see this test's own.
    $env:TMPDIR = (New-Item -ItemType Directory -Path (Join-Path $scratch 'tmp')).FullName
    if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
    $script:work = (New-Item -ItemType Directory -Path (Join-Path $scratch 'work')).FullName
    # Examples that use "your own" kernel and initramfs (./vmlinux, ./initrd.cpio) get the minimal image's.
    $image = Get-ForkdImage minimal | Select-Object -First 1
    Copy-Item $image.KernelPath (Join-Path $work 'vmlinux')
    Copy-Item $image.InitramfsPath (Join-Path $work 'initrd.cpio')

    $script:whatIf = @{
        'Build-ForkdImage/3'        = 'rebuilds every image in the image cache, which other test runs share'
        'New-ForkdSnapshot/3'       = 'needs the playwright-browser image (a long root-disk build)'
        'Invoke-ForkdFork/3'        = 'child network namespaces are global to the machine'
        'Initialize-ForkdNetwork/1' = 'child network namespaces are global to the machine'
        'Initialize-ForkdNetwork/2' = 'child network namespaces are global to the machine'
        'Remove-ForkdNetwork/1'     = 'child network namespaces are global to the machine'
        'Remove-ForkdNetwork/2'     = 'child network namespaces are global to the machine'
        'Remove-ForkdNetwork/3'     = 'child network namespaces are global to the machine'
        'Import-ForkdPack/2'        = 'downloads from a server on the internet'
        'Import-ForkdPack/3'        = 'downloads from a server on the internet'
        'Publish-ForkdPack/1'       = 'uploads to a server on the internet'
        'Publish-ForkdPack/2'       = 'uploads to a server on the internet'
        'Start-ForkdSandbox/1'      = 'builds the nodejs image into the shared image cache'
        'Remove-ForkdImage/1'       = 'deletes from the image cache, which other test runs share'
        'Remove-ForkdImage/2'       = 'deletes from the image cache, which other test runs share'
        'Start-ForkdController/1'   = 'serves in the foreground until Ctrl+C, on a port the machine shares'
        'Start-ForkdController/2'   = 'serves on every interface, with certificates it does not have'
        'Start-ForkdMcpServer/1'    = 'serves MCP on stdin until it closes'
        'Import-ForkdPack/4'        = 'the pack has no volume at /opt/cache; the example shows how a host file is bound'
    }

    function Stop-AllChildren { Get-ForkdChild | Stop-ForkdChild -Confirm:$false }
    function Confirm-Snapshot([string] $Tag) {
        if (Get-ForkdSnapshot -Tag $Tag -ErrorAction SilentlyContinue) { return }
        if ($Tag -eq 'py') {
            New-ForkdSnapshot -Tag py -Recipe minimal -WarmupCode 'import json; table = {i: i * i for i in range(1000)}' | Out-Null
        } else {
            Confirm-Snapshot py
            $pack = Export-ForkdPack -Tag py -Path (Join-Path $scratch 'seed.tar.zst') -Force
            Import-ForkdPack -Path $pack.Path -Tag $Tag | Out-Null
        }
    }
    function Confirm-Child {
        Confirm-Snapshot py
        if (-not (Get-ForkdChild -Tag py | Where-Object State -eq 'Running')) { Invoke-ForkdFork -Tag py | Out-Null }
    }
    # What each page's examples assume is there.
    $script:setup = @{
        'Build-ForkdImage'    = { }
        'New-ForkdSnapshot'   = {
            Stop-AllChildren
            'py', 'mine' | Where-Object { Get-ForkdSnapshot -Tag $_ -ErrorAction SilentlyContinue } | Remove-ForkdSnapshot -Confirm:$false
        }
        'Get-ForkdSnapshot'   = { Confirm-Snapshot py }
        'Invoke-ForkdFork'    = { Confirm-Snapshot py }
        'Get-ForkdChild'      = { Stop-AllChildren; Confirm-Child }
        'Invoke-ForkdEval'    = { Confirm-Child }
        'Invoke-ForkdExec'    = { Confirm-Child }
        'Test-ForkdAgent'     = { Confirm-Child }
        'Stop-ForkdChild'     = { Confirm-Child }
        'Checkpoint-ForkdChild' = { Confirm-Child; 'py-plan', 'py-full' | Where-Object { Get-ForkdSnapshot -Tag $_ -ErrorAction SilentlyContinue } | Remove-ForkdSnapshot -Force -Confirm:$false }
        'Suspend-ForkdChild'  = { Confirm-Child }
        'Resume-ForkdChild'   = { Confirm-Child }
        'Merge-ForkdSnapshot' = {
            Confirm-Child
            if (-not (Get-ForkdSnapshot -Tag py-step3 -ErrorAction SilentlyContinue)) {
                Get-ForkdChild -Tag py | Where-Object State -eq 'Running' | Select-Object -First 1 | Checkpoint-ForkdChild -Tag py-step3 -Mode Diff | Out-Null
            }
        }
        'Export-ForkdPack'    = {
            Stop-AllChildren; Confirm-Snapshot pyagent
            # The branch pages left diff snapshots (py-*); packs of diff chains are not supported yet.
            Get-ForkdSnapshot | Where-Object { $_.Tag -like 'py-*' } | Remove-ForkdSnapshot -Force -Confirm:$false
        }
        'Import-ForkdPack'    = {
            Set-Content (Join-Path $work 'cache.img') 'volume'
            if (-not (Test-Path (Join-Path $work 'pyagent.forkd-snapshot.tar.zst'))) { Export-ForkdPack -Tag pyagent -Path $work | Out-Null }
            Remove-ForkdSnapshot -Tag pyagent -Confirm:$false
        }
        'Publish-ForkdPack'   = { Confirm-Snapshot pyagent }
        'Start-ForkdController' = {
            # The examples name token files under ~ and a start checks them first (-WhatIf too): this page's shell
            # gets the scratch dir as its home, with the files there.
            $token = [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(32))
            Set-Content (Join-Path $work '.forkd-token') $token
            New-Item -ItemType Directory -Force (Join-Path $work 'forkd') | Out-Null
            Set-Content (Join-Path $work 'forkd/token') $token
            $null = $shell.AddScript("(Get-PSProvider FileSystem).Home = '$work'").Invoke()
            $shell.Commands.Clear()
        }
        'Remove-ForkdSnapshot' = {
            Stop-AllChildren; Confirm-Snapshot py
            # The branch pages left diff snapshots over py; they would hold it (SnapshotHasDependents).
            Get-ForkdSnapshot | Where-Object { $_.Tag -like 'py-*' } | Remove-ForkdSnapshot -Force -Confirm:$false
        }
    }

    # One runspace per page, so variables carry from one example to the next as a reader would type them.
    # A runspace has no interactive host: any prompt (ShouldContinue, a confirmation, Read-Host) is an error.
    function New-PageShell {
        $shell = [powershell]::Create()
        $null = $shell.AddScript("Set-Location '$work'; Import-Module '$env:FORKD_MODULE_PATH'; `$ErrorActionPreference = 'Stop'").Invoke()
        $shell
    }
    function Invoke-Example($Shell, [string] $Code, [bool] $WhatIf) {
        $Shell.Commands.Clear()
        $Shell.Streams.ClearStreams()
        $script = "`$WhatIfPreference = `$$WhatIf`n. {`n$Code`n} | Out-String -Width 120"
        $output = $Shell.AddScript($script).Invoke()
        [pscustomobject]@{ Output = ($output -join ''); Errors = @($Shell.Streams.Error) }
    }
}

AfterAll {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    $env:FORKD_DATA_DIR = $saved.Data
    $env:TMPDIR = $saved.Tmp
    Remove-Item $scratch -Recurse -Force -ErrorAction SilentlyContinue
    $env:FORKD_HUB_URL = $saved.Hub
}

Describe 'Help examples of <Name>' -Tag Conventions, HelpExamples -ForEach $pages {
    BeforeAll {
        $script:shell = New-PageShell
        if ($setup[$Name]) { & $setup[$Name] }
        # Examples that say $c mean "a child you forked": the page's shell gets one.
        if ($Examples.Code -match '\$c\.Id' -and -not ($Examples.Code -match '\$c = ')) {
            $null = $shell.AddScript('$c = Get-ForkdChild -Tag py | Where-Object State -ne Exited | Select-Object -First 1').Invoke()
            $shell.Commands.Clear()
        }
    }
    AfterAll {
        $shell.Dispose()
        # Examples may point the session elsewhere (Get-ForkdDataDirectory example 2); put it back.
        $env:FORKD_DATA_DIR = Join-Path $scratch 'data'
        if ($Name -eq 'Invoke-ForkdFork') { Stop-AllChildren }
    }

    It 'has examples' { $Examples.Count | Should -BeGreaterThan 0 }

    It 'example <Number> runs without an error or a prompt' -ForEach $Examples {
        $key = "$Name/$Number"
        $asWhatIf = $whatIf.ContainsKey($key)
        if ($asWhatIf) { Write-Host "    (-WhatIf: $($whatIf[$key]))" }
        $run = try { Invoke-Example $shell $Code $asWhatIf } catch { throw "example failed:`n$Code`n--> $($_.Exception.Message)" }
        $run.Errors | ForEach-Object { "$_" } | Should -BeNullOrEmpty -Because "example:`n$Code"
    }
}
