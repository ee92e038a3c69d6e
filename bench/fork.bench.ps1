#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Fork-from-warm benchmark: cold boot vs fork at 1 to 100 children, what an idle child costs, where a
    child's start goes, eval vs exec. One run, one guest image, one accelerator (named in the output).
.DESCRIPTION
    Measures, in one run on the same guest and accelerator:
      - cold boot to the agent's first reply (New-ForkdSnapshot's BootTime);
      - Invoke-ForkdFork of N = 1, 4, 16, 64, 100 children until every agent replies (wall clock), the
        marginal child (T16 - T1) / 15, and for 100 the time until every child answered its first eval;
      - each child's start stage by stage (StartStages: VMM start, QMP connect, state load, resume, agent
        ready, the engine's own work), medians at 1, 16 and 100;
      - idle cost per child with 100 idle children: % of a core and wake-ups per second; host memory the
        100 use; private and proportional memory per idle child (16, fresh from the fork), guest-RAM
        mapping and VMM apart;
      - a fork of 4 while the 100 idle children run, against the same fork on an empty machine (median of 7 each);
      - an eval round trip against exec of a fresh `python3 -c` for the same expression.
    Every start here is cold: no VMM is pre-started. Writes bench/results/fork.md (tables),
    bench/results/fork.json and bench/results/fork.png (chart; python3-matplotlib from apt).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Recipe = 'minimal',
    [ValidateSet('Auto', 'Kvm', 'Tcg')] [string] $Accelerator = 'Auto',
    [int] $ColdBoots = 3,
    [int] $IdleSeconds = 10,
    [int] $EvalRounds = 30,
    [int] $ExecRounds = 5
)
$ErrorActionPreference = 'Stop'
$results = Join-Path $PSScriptRoot 'results'
New-Item -ItemType Directory -Force $results | Out-Null
Import-Module (Resolve-Path $ModulePath).Path -Force
. (Join-Path $PSScriptRoot 'fork-measure.ps1')
$env:FORKD_DATA_DIR = Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-data-$PID"
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path (Split-Path $PSScriptRoot -Parent) '.cache' }

$tag = 'bench'
$code = 'sum(i * i for i in range(1000))'
$counts = 1, 4, 16, 64, 100
try {
    Write-Host "==> image and cold boots ($ColdBoots)"
    $boots = foreach ($i in 1..$ColdBoots) {
        $snap = New-ForkdSnapshot -Tag $tag -Recipe $Recipe -Accelerator $Accelerator -Force `
            -WarmupCode "import json, math`nwarm = {'ready': True}"
        Write-Host ("    boot {0}: {1:N2} s to first agent reply ({2})" -f $i, $snap.BootTime.TotalSeconds, $snap.AcceleratorReason)
        $snap.BootTime.TotalMilliseconds
    }
    $accel = $snap.Accelerator.ToString().ToUpperInvariant()
    $guestMiB = $snap.MemoryMiB
    $cold = Get-Median $boots
    $null = Invoke-TimedFork $tag 1 | ForEach-Object { $_.Children | Stop-ForkdChild -Confirm:$false } # page cache warm, as for every run after

    $fork = [ordered]@{}; $stages = [ordered]@{}
    foreach ($n in $counts) {
        $reps = if ($n -le 16) { 3 } else { 1 }
        $walls = foreach ($r in 1..$reps) {
            if ($n -eq 100) { $forkEmpty = Measure-Fork4 $tag } # the baseline for "beside 100 idle", measured alike
            $memBefore = Get-MemAvailableMiB
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $run = Invoke-TimedFork $tag $n
            Write-Host ("    fork {0,3}: all agents replying after {1:N0} ms (ready median {2:N0} ms)" -f $n, $run.Wall, (Get-Median $run.Children.Ready.TotalMilliseconds))
            if ($r -eq $reps -and $n -in 1, 16, 100) { $stages["$n"] = Get-StageMedians $run.Children }
            if ($n -eq 100) {
                $answers = @($run.Children | Invoke-ForkdEval -Code '6 * 7' -ThrottleLimit 16)
                $firstEval = $sw.Elapsed.TotalMilliseconds
                if (@($answers | Where-Object Value -eq 42).Count -ne 100) { throw 'not every child answered its first eval' }
                Write-Host ("    100 children forked and each answered its first eval after {0:N0} ms" -f $firstEval)
                Start-Sleep -Seconds 3 # idle: let the children settle before measuring
                $idle = Measure-IdleCost $run.Children $IdleSeconds
                $hostMiB = $memBefore - (Get-MemAvailableMiB)
                $forkBusy = Measure-Fork4 $tag
                Write-Host ("    idle: {0:N3} % of a core and {1:N1} wake-ups/s per child; fork 4 beside 100 idle: {2:N0} ms" -f $idle.CorePercent, $idle.WakeupsPerSecond, $forkBusy)
                $all = @(Get-ForkdChild)
                $all | Stop-ForkdChild -Confirm:$false
                Assert-NothingLeft $run.Children
            } elseif ($n -eq 16 -and $r -eq $reps) {
                Start-Sleep -Seconds 3 # idle children, fresh from the fork, as the 23 MiB figure of issue 13 was taken
                $memory = foreach ($c in $run.Children) { [Forkd.Core.Host.ProcessMemory]::Measure($c.ProcessId, $c.MemoryFile) }
                $run.Children | Stop-ForkdChild -Confirm:$false
            } elseif ($n -eq 1 -and $r -eq $reps) {
                Write-Host '==> eval vs exec on one child'
                $calls = Measure-EvalVsExec $run.Children[0] $code $EvalRounds $ExecRounds
                $run.Children | Stop-ForkdChild -Confirm:$false
            } else {
                $run.Children | Stop-ForkdChild -Confirm:$false
            }
            $run.Wall
        }
        $fork["$n"] = Get-Median $walls
    }

    Remove-ForkdSnapshot -Tag $tag -Confirm:$false

    $m = @{
        RamPrivate  = ($memory | Measure-Object GuestRamPrivateBytes -Average).Average / 1MB
        RamPss      = ($memory | Measure-Object GuestRamPssBytes -Average).Average / 1MB
        ProcPrivate = ($memory | Measure-Object ProcessPrivateBytes -Average).Average / 1MB
        ProcPss     = ($memory | Measure-Object ProcessPssBytes -Average).Average / 1MB
    }
    $m.Overhead = $m.ProcPrivate - $m.RamPrivate
    $marginal = ($fork['16'] - $fork['1']) / 15
    $marginal100 = ($fork['100'] - $fork['1']) / 99
    $evalMs = $calls.Eval; $execMs = $calls.Exec
    $data = [ordered]@{ accel = $accel; guest_mib = $guestMiB; cold = $cold; fork = $fork; stages = $stages
        first_eval_100 = $firstEval; marginal = $marginal; marginal_100 = $marginal100; idle = $idle; host_mib_100 = $hostMiB; fork4_busy = $forkBusy; fork4_empty = $forkEmpty
        memory = [ordered]@{ 'guest RAM private' = $m.RamPrivate; 'VMM overhead private' = $m.Overhead; 'process private' = $m.ProcPrivate; 'process PSS' = $m.ProcPss }
        eval_ms = $evalMs; exec_ms = $execMs }
    $json = Join-Path $results 'fork.json'
    $data | ConvertTo-Json -Depth 5 | Set-Content $json
    $md = & (Join-Path $PSScriptRoot 'fork-report.ps1') -Data $data -Recipe $Recipe -ColdBoots $ColdBoots -IdleSeconds $IdleSeconds -Code $code
    Set-Content (Join-Path $results 'fork.md') $md
    Write-Host $md

    $py = '/usr/bin/python3'
    & $py -c 'import matplotlib' 2>$null
    if ($LASTEXITCODE -ne 0) {
        Write-Host '==> installing python3-matplotlib for the chart'
        $env:DEBIAN_FRONTEND = 'noninteractive'
        & apt-get install -y -qq --no-install-recommends python3-matplotlib | Out-Null
    }
    & $py (Join-Path $PSScriptRoot 'fork_chart.py') $json (Join-Path $results 'fork.png')
    if ($LASTEXITCODE -ne 0) { throw 'chart failed' }
    Write-Host "wrote $(Join-Path $results 'fork.md') and fork.png"
} finally {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $env:FORKD_DATA_DIR -ErrorAction SilentlyContinue
}
