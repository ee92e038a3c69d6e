<#
.SYNOPSIS
    A short tour of the module as built: run by `build.ps1 Demo` (the README's first command).
#>
param([Parameter(Mandatory)] [string] $ModulePath)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath
$demo = Join-Path ([IO.Path]::GetTempPath()) "forkd-demo-$PID"
$env:FORKD_DATA_DIR = $demo
try {
    Write-Host '== Cmdlets'
    Get-Command -Module Forkd | Format-Table Name, Verb, Noun -AutoSize | Out-Host
    Write-Host "== Data directory (FORKD_DATA_DIR=$demo for this demo)"
    Get-ForkdDataDirectory | Format-List | Out-Host
    Write-Host '== A forkd-layout snapshot made by hand, listed like `forkd images`'
    $snap = New-Item -ItemType Directory -Force -Path (Join-Path $demo 'snapshots/demo')
    [IO.File]::WriteAllBytes((Join-Path $snap 'vmstate'), [byte[]]::new(14540))
    $fs = [IO.File]::Create((Join-Path $snap 'memory.bin')); $fs.SetLength(64MB); $fs.Dispose()
    Get-ForkdSnapshot | Out-Host
    Write-Host '== The tag rule rejects path tricks'
    foreach ($bad in '../etc', '.hidden', "a`nb") {
        try { Get-ForkdSnapshot -Tag $bad -ErrorAction Stop } catch { Write-Host "  $($_.FullyQualifiedErrorId): $($_.Exception.Message)" }
    }
    Write-Host '== -WhatIf changes nothing'
    Get-ForkdSnapshot -Tag demo | Remove-ForkdSnapshot -WhatIf
    Get-ForkdSnapshot -Tag demo | Remove-ForkdSnapshot -Confirm:$false
    Write-Host "  snapshots left: $(@(Get-ForkdSnapshot).Count)"
    Write-Host '== Stale work dirs (dry run)'
    Remove-ForkdStaleWorkDir -WhatIf | Format-Table | Out-Host

    Write-Host '== Fork from warm (QEMU; TCG where KVM cannot boot Linux): image, snapshot, 3 children, eval'
    if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $PSScriptRoot '../.cache' }
    Build-ForkdImage -Recipe minimal | Format-Table | Out-Host
    $snap = New-ForkdSnapshot -Tag demo -Recipe minimal -WarmupCode "warm = {'token': 'inherited', 'n': sum(range(10**6))}"
    $snap | Format-Table | Out-Host
    $children = Invoke-ForkdFork -Tag demo -Count 3
    $children | Format-Table | Out-Host
    $children | Invoke-ForkdEval -Code "(warm['token'], warm['n'])" | Format-Table | Out-Host
    $children | Stop-ForkdChild -Confirm:$false
    Remove-ForkdSnapshot -Tag demo -Confirm:$false
} finally {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $demo -ErrorAction SilentlyContinue
}
