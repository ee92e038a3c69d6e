#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Builds the Forkd module into out/Forkd and runs its tests or benchmarks.
.DESCRIPTION
    Build  lays the module out as users install it: out/Forkd with Forkd.psd1, the DLLs,
           Forkd.Format.ps1xml and en-US help generated from docs/cmdlets/*.md.
    Test   Build, then xUnit over the engine, then Pester over out/Forkd in a child pwsh.
           Ends with one line "N passed, N failed, N skipped" and exits non-zero on any failure.
           -Fast runs the fast tier only: no VMs, no guest image builds, no downloads (xUnit without
           Tier=Full, Pester tags Module, Store and Hub). CI runs the full tier.
    Bench  Build, then every bench/*.bench.ps1.
    Demo   Build, import the module and show what it does so far.
    Package Build, then write the module's .nupkg (PSResourceGet's Compress-PSResource) into out/.
.EXAMPLE
    dotnet tool restore; dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Bench', 'Demo', 'Package')]
    [string] $Task = 'Build',
    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',
    # Pester tests to run (paths or tags); all when empty.
    [string[]] $PesterTag = @(),
    [switch] $SkipXunit,
    # The fast tier: no VMs, no downloads (a few minutes); the full tier is the default.
    [switch] $Fast
)

$ErrorActionPreference = 'Stop'
$env:NO_COLOR = '1'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$PSStyle.OutputRendering = 'PlainText'
$root = $PSScriptRoot
$out = Join-Path $root 'out/Forkd'
$artifacts = Join-Path $root 'artifacts'

function Invoke-Native {
    param([string] $Exe, [string[]] $Arguments)
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Invoke-Build {
    $publish = Join-Path $artifacts 'publish'
    Invoke-Native dotnet @('publish', "$root/src/Forkd.PowerShell/Forkd.PowerShell.csproj", '-c', $Configuration,
        '-r', 'linux-x64', '--self-contained', 'false', '-o', $publish, '--nologo', '-v', 'quiet')
    if (Test-Path $out) { Remove-Item $out -Recurse -Force }
    New-Item -ItemType Directory -Path $out, (Join-Path $out 'en-US') | Out-Null
    # Allow-list: exactly our assemblies and their third-party dependencies, never the PowerShell reference set.
    # A missing file or one nobody listed fails the build, so a new dependency is a decision, not an accident.
    $allow = 'Forkd.Core.dll', 'Forkd.PowerShell.dll', 'Tmds.LibC.dll', 'ZstdSharp.dll', 'Tomlyn.dll', 'K4os.Compression.LZ4.dll'
    $published = @(Get-ChildItem $publish -Filter '*.dll' | ForEach-Object Name)
    $missing = @($allow | Where-Object { $_ -notin $published })
    $unexpected = @($published | Where-Object { $_ -notin $allow })
    if ($missing -or $unexpected) {
        throw "module file list changed: missing [$($missing -join ', ')], unexpected [$($unexpected -join ', ')]; update the allow-list in build.ps1"
    }
    foreach ($name in $allow) { Copy-Item (Join-Path $publish $name) $out }
    Copy-Item "$root/Forkd.psd1", "$root/Forkd.Format.ps1xml", "$root/Forkd.Types.ps1xml" $out
    # The controller (REST API, MCP) is a helper executable on ASP.NET Core: its own folder, all of its publish output.
    $controllerPublish = Join-Path $artifacts 'publish-controller'
    Invoke-Native dotnet @('publish', "$root/src/Forkd.Service/Forkd.Service.csproj", '-c', $Configuration,
        '-r', 'linux-x64', '--self-contained', 'false', '-o', $controllerPublish, '--nologo', '-v', 'quiet')
    $controllerAllow = 'forkd-controller.dll', 'forkd-controller.deps.json', 'forkd-controller.runtimeconfig.json', 'Forkd.Core.dll',
        'Tmds.LibC.dll', 'ZstdSharp.dll', 'Tomlyn.dll', 'K4os.Compression.LZ4.dll', 'Prometheus.NetStandard.dll', 'Prometheus.AspNetCore.dll',
        'ModelContextProtocol.dll', 'ModelContextProtocol.Core.dll', 'ModelContextProtocol.AspNetCore.dll', 'Microsoft.Extensions.AI.Abstractions.dll'
    $controllerPublished = @(Get-ChildItem $controllerPublish -File | Where-Object Extension -in '.dll', '.json' | ForEach-Object Name)
    $missing = @($controllerAllow | Where-Object { $_ -notin $controllerPublished })
    $unexpected = @($controllerPublished | Where-Object { $_ -notin $controllerAllow })
    if ($missing -or $unexpected) {
        throw "controller file list changed: missing [$($missing -join ', ')], unexpected [$($unexpected -join ', ')]; update the list in build.ps1"
    }
    New-Item -ItemType Directory -Path (Join-Path $out 'controller') | Out-Null
    foreach ($name in $controllerAllow) { Copy-Item (Join-Path $controllerPublish $name) (Join-Path $out 'controller') }
    foreach ($dir in 'guest', 'recipes') {
        if (Test-Path "$root/$dir") { Copy-Item "$root/$dir" $out -Recurse }
    }
    Copy-Item "$root/docs/about_Forkd.help.txt" (Join-Path $out 'en-US')
    & (Join-Path $root 'tools/New-ForkdHelp.ps1') -ModulePath (Join-Path $out 'Forkd.psd1') -SourcePath (Join-Path $root 'docs/cmdlets') `
        -OutputPath (Join-Path $out 'en-US/Forkd.PowerShell.dll-Help.xml')
    Write-Host "built $out"
}

# The .nupkg PSResourceGet (bundled with pwsh 7.4+) makes of out/Forkd, the same file Publish-PSResource uploads.
function Invoke-Package {
    Invoke-Build
    $staging = Join-Path $artifacts 'package'
    if (Test-Path $staging) { Remove-Item $staging -Recurse -Force }
    New-Item -ItemType Directory -Path $staging | Out-Null
    Import-Module Microsoft.PowerShell.PSResourceGet -MinimumVersion 1.1.0
    Compress-PSResource -Path $out -DestinationPath $staging
    $nupkg = Get-ChildItem $staging -Filter 'Forkd.*.nupkg' | Select-Object -First 1
    if (-not $nupkg) { throw "Compress-PSResource wrote no Forkd .nupkg into $staging" }
    $target = Join-Path (Split-Path $out) $nupkg.Name
    Move-Item $nupkg.FullName $target -Force
    Write-Host "packaged $target"
}

function Get-PesterModule {
    $psd1 = Join-Path $root '.tools/pkgs/pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $psd1)) {
        Invoke-Native dotnet @('restore', "$root/tools/tools.csproj", '--packages', "$root/.tools/pkgs", '--nologo', '-v', 'quiet')
    }
    $psd1
}

function Invoke-Xunit {
    # One run per test project (the engine, the service); the counts are summed.
    $totals = [pscustomobject]@{ Passed = 0; Failed = 0; Skipped = 0 }
    foreach ($project in 'Forkd.Core.Tests', 'Forkd.Service.Tests') {
        $r = Invoke-XunitProject $project
        $totals.Passed += $r.Passed; $totals.Failed += $r.Failed; $totals.Skipped += $r.Skipped
    }
    $totals
}

function Invoke-XunitProject([string] $Project) {
    $trxDir = Join-Path $artifacts "xunit/$Project"
    if (Test-Path $trxDir) { Remove-Item $trxDir -Recurse -Force }
    $filter = if ($Fast) { @('--filter', 'Tier!=Full') } else { @() }
    & dotnet test "$root/tests/$Project/$Project.csproj" -c $Configuration --nologo @filter `
        --logger 'trx;LogFileName=xunit.trx' --logger 'console;verbosity=normal' --results-directory $trxDir
    $trx = Join-Path $trxDir 'xunit.trx'
    if (-not (Test-Path $trx)) {
        Write-Host 'xUnit produced no results (build failure?)'
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
    }
    $run = ([xml](Get-Content $trx -Raw)).TestRun
    $c = $run.ResultSummary.Counters
    $failed = [int]$c.failed + [int]$c.error + [int]$c.timeout + [int]$c.aborted
    if ($LASTEXITCODE -ne 0 -and $failed -eq 0) { $failed = 1 }
    # The summary counters leave skipped tests out of notExecuted; count them from the results.
    $skipped = @($run.Results.UnitTestResult | Where-Object outcome -eq 'NotExecuted').Count
    [pscustomobject]@{ Passed = [int]$c.passed; Failed = $failed; Skipped = $skipped }
}

function Invoke-PesterTests {
    $pester = Get-PesterModule
    $result = Join-Path $artifacts 'pester.xml'
    $summary = Join-Path $artifacts 'pester-summary.json'
    $script = {
        param($PesterModule, $TestPath, $ResultPath, $SummaryPath, $Tags)
        $ErrorActionPreference = 'Stop'
        Import-Module $PesterModule -Force
        $cfg = New-PesterConfiguration
        $cfg.Run.Path = $TestPath
        $cfg.Run.PassThru = $true
        $cfg.Run.Exit = $false
        $cfg.Output.Verbosity = 'Detailed'
        $cfg.Output.RenderMode = 'Plaintext'
        # No XML report: Pester's NUnit writer throws on control characters in a failure message
        # (e.g. a /proc cmdline), which loses the whole result; the console log is the record.
        $cfg.TestResult.Enabled = $false
        if ($Tags) { $cfg.Filter.Tag = $Tags -split ',' }
        $r = Invoke-Pester -Configuration $cfg
        if ($null -eq $r) {
            @{ Passed = 0; Failed = 1; Skipped = 0 } | ConvertTo-Json | Set-Content $SummaryPath
            exit 1
        }
        $failed = $r.FailedCount + $r.FailedBlocksCount + $r.FailedContainersCount
        @{ Passed = $r.PassedCount; Failed = $failed; Skipped = $r.SkippedCount } | ConvertTo-Json | Set-Content $SummaryPath
        exit ([int]($failed -gt 0))
    }
    if (Test-Path $summary) { Remove-Item $summary }
    $pwsh = Join-Path $PSHOME 'pwsh'
    $env:FORKD_MODULE_PATH = Join-Path $out 'Forkd.psd1'
    # Guest images are big and slow to build: tests share one cache across runs and test files.
    if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $root '.cache' }
    & $pwsh -NoProfile -NonInteractive -Command $script -args $pester, "$root/tests/Pester", $result, $summary, ($PesterTag -join ',')
    $code = $LASTEXITCODE
    if (-not (Test-Path $summary)) {
        Write-Host "Pester did not finish (exit code $code)"
        return [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 }
    }
    $s = Get-Content $summary -Raw | ConvertFrom-Json
    if ($code -ne 0 -and $s.Failed -eq 0) { $s.Failed = 1 }
    [pscustomobject]@{ Passed = [int]$s.Passed; Failed = [int]$s.Failed; Skipped = [int]$s.Skipped }
}

New-Item -ItemType Directory -Force -Path $artifacts | Out-Null
switch ($Task) {
    'Build' { Invoke-Build }
    'Package' { Invoke-Package }
    'Demo' {
        Invoke-Build
        & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -File (Join-Path $root 'tools/Show-ForkdDemo.ps1') -ModulePath (Join-Path $out 'Forkd.psd1')
        if ($LASTEXITCODE -ne 0) { throw "demo failed with exit code $LASTEXITCODE" }
    }
    'Bench' {
        Invoke-Build
        foreach ($b in Get-ChildItem (Join-Path $root 'bench') -Filter '*.bench.ps1' | Sort-Object Name) {
            Write-Host "==> $($b.Name)"
            & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -File $b.FullName -ModulePath (Join-Path $out 'Forkd.psd1')
            if ($LASTEXITCODE -ne 0) { throw "$($b.Name) failed with exit code $LASTEXITCODE" }
        }
    }
    'Test' {
        $totals = [ordered]@{ Passed = 0; Failed = 0; Skipped = 0 }
        try {
            Invoke-Build
        } catch {
            Write-Host "build failed: $_"
            '0 passed, 1 failed, 0 skipped'
            exit 1
        }
        $parts = @()
        if (-not $SkipXunit) { $parts += Invoke-Xunit }
        if ($Fast -and -not $PesterTag) { $script:PesterTag = @('Module', 'Store', 'Hub') }
        $parts += Invoke-PesterTests
        foreach ($p in $parts) { foreach ($k in @($totals.Keys)) { $totals[$k] += $p.$k } }
        Write-Host ''
        Write-Host "$($totals.Passed) passed, $($totals.Failed) failed, $($totals.Skipped) skipped"
        exit ([int]($totals.Failed -gt 0))
    }
}
