<#
.SYNOPSIS
    Warm browser in a forked child versus Chromium launched cold, side by side on the same accelerator.
.DESCRIPTION
    Snapshots the playwright-browser recipe once (Chromium launched, about:blank open), forks children
    and measures, in the same run and on the same machine:
      warm      eval of "setContent + page.title()" in a forked child whose browser is already running;
      fork+eval fork one fresh child and run the same eval (what a new sandbox costs end to end);
      cold      in a fresh child, a new node process that loads playwright-core, launches Chromium,
                opens a page and does the same (what every sandbox costs without fork-from-warm).
    Prints a table and the ratios, and writes them as JSON to -OutFile when given.
.EXAMPLE
    dotnet pwsh bench/browser.bench.ps1 -ModulePath out/Forkd/Forkd.psd1 -WarmSamples 10 -ColdSamples 2
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $WarmSamples = 10,
    [int] $ForkSamples = 3,
    [int] $ColdSamples = 1,
    [string] $OutFile
)
$ErrorActionPreference = 'Stop'
Import-Module (Resolve-Path $ModulePath).Path -Force
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../.cache')) }
$savedData = $env:FORKD_DATA_DIR
$env:FORKD_DATA_DIR = Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-browser-$PID"
$tag = 'bench-pwb'
$eval = "await page.setContent('<title>bench</title>'); return await page.title()"
# The cold leg: the same work from nothing, in a fresh node process inside a fresh child.
$coldJs = @'
const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const page = await (await browser.newContext()).newPage();
  await page.setContent('<title>bench</title>');
  process.stdout.write(await page.title());
  await browser.close();
})().catch(e => { console.error(e.stack); process.exit(1); });
'@

function Measure-Ms([scriptblock] $Block) {
    $sw = [Diagnostics.Stopwatch]::StartNew(); $null = & $Block; $sw.Stop(); $sw.Elapsed.TotalMilliseconds
}
function Get-Median([double[]] $Values) {
    $s = $Values | Sort-Object; $n = $s.Count
    if ($n % 2) { $s[[int][math]::Floor($n / 2)] } else { ($s[$n / 2 - 1] + $s[$n / 2]) / 2 }
}

try {
    Write-Host "snapshotting playwright-browser (root disk from the cache, Chromium launched in the parent)..."
    $snapshotMs = Measure-Ms { New-ForkdSnapshot -Tag $tag -Recipe playwright-browser -Force }
    $snap = Get-ForkdSnapshot -Tag $tag
    Write-Host ("  snapshot: {0:N1} s, accelerator {1}" -f ($snapshotMs / 1000), $snap.Accelerator)

    # warm: one forked child, repeated evals (the first one is not counted: it pages in the child's working set)
    $child = Invoke-ForkdFork -Tag $tag -Count 1
    $first = Invoke-ForkdEval -Id $child.Id -Code $eval -TimeoutSec 600
    if ($first.Value -ne 'bench') { throw "warm eval returned '$($first.Value)' ($($first.Error))" }
    $warm = foreach ($i in 1..$WarmSamples) {
        $r = Invoke-ForkdEval -Id $child.Id -Code $eval -TimeoutSec 600
        if ($r.Value -ne 'bench') { throw "warm eval returned '$($r.Value)' ($($r.Error))" }
        $r.DurationMs
    }
    Stop-ForkdChild -Id $child.Id -Confirm:$false

    # fork+eval: a new child each time, timed from the fork call to the eval's answer
    $forkEval = foreach ($i in 1..$ForkSamples) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $c = Invoke-ForkdFork -Tag $tag -Count 1
        $r = Invoke-ForkdEval -Id $c.Id -Code $eval -TimeoutSec 600
        $sw.Stop()
        if ($r.Value -ne 'bench') { throw "fork+eval returned '$($r.Value)' ($($r.Error))" }
        Stop-ForkdChild -Id $c.Id -Confirm:$false
        $sw.Elapsed.TotalMilliseconds
    }

    # cold: a fresh child, a fresh node + Chromium launch doing the same
    $cold = foreach ($i in 1..$ColdSamples) {
        $c = Invoke-ForkdFork -Tag $tag -Count 1
        $r = Invoke-ForkdExec -Id $c.Id -Command 'env', 'NODE_PATH=/opt/forkd/node_modules', 'node', '-e', $coldJs -TimeoutSec 1800
        Stop-ForkdChild -Id $c.Id -Confirm:$false
        if ($r.Stdout -ne 'bench') { throw "cold launch failed: exit $($r.ExitCode) $($r.Error) $($r.Stderr)" }
        $r.DurationMs
    }

    $result = [ordered]@{
        accelerator     = "$($snap.Accelerator)".ToLowerInvariant() # forkd's spelling in the JSON, not the enum's number
        host_cores      = [Environment]::ProcessorCount
        warm_eval_ms    = [math]::Round((Get-Median $warm), 1)
        warm_min_ms     = [math]::Round(($warm | Measure-Object -Minimum).Minimum, 1)
        fork_eval_ms    = [math]::Round((Get-Median $forkEval), 1)
        cold_launch_ms  = [math]::Round((Get-Median $cold), 1)
        speedup_warm    = [math]::Round((Get-Median $cold) / (Get-Median $warm), 1)
        speedup_forked  = [math]::Round((Get-Median $cold) / (Get-Median $forkEval), 1)
        samples         = @{ warm = $WarmSamples; fork = $ForkSamples; cold = $ColdSamples }
        snapshot_s      = [math]::Round($snapshotMs / 1000, 1)
    }
    Write-Host ''
    Write-Host ("{0,-40} {1,12}" -f 'page.title() after setContent', 'median')
    Write-Host ("{0,-40} {1,10:N1} ms" -f 'warm: eval in a forked child', $result.warm_eval_ms)
    Write-Host ("{0,-40} {1,10:N1} ms" -f 'fork one child + eval', $result.fork_eval_ms)
    Write-Host ("{0,-40} {1,10:N1} ms" -f 'cold: launch Chromium in a fresh child', $result.cold_launch_ms)
    Write-Host ("speed-up: {0}x (warm eval), {1}x (fork + eval), accelerator {2}" -f $result.speedup_warm, $result.speedup_forked, $result.accelerator)
    if ($OutFile) { $result | ConvertTo-Json | Set-Content -Path $OutFile }
}
finally {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    if (Get-ForkdSnapshot -Tag $tag -ErrorAction SilentlyContinue) { Remove-ForkdSnapshot -Tag $tag -Confirm:$false }
    Remove-Item -Recurse -Force $env:FORKD_DATA_DIR -ErrorAction SilentlyContinue
    $env:FORKD_DATA_DIR = $savedData
}
