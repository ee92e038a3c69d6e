#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Fork-from-warm benchmark: cold boot vs fork, memory per idle child, eval vs exec. One run, one
    guest image, one accelerator (named in the output).
.DESCRIPTION
    Measures, in one run on the same guest and accelerator:
      - cold boot to the agent's first reply (New-ForkdSnapshot's BootTime, 3 boots);
      - Invoke-ForkdFork of 1, 4 and 16 children until every agent replies (wall clock);
      - private and proportional memory per idle child, guest-RAM mapping and whole VMM process apart;
      - an eval round trip against exec of a fresh `python3 -c` for the same expression.
    Writes bench/results/fork.md (table) and bench/results/fork.png (chart; python3-matplotlib from
    apt, installed here when missing), and prints the table.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Recipe = 'minimal',
    [ValidateSet('Auto', 'Kvm', 'Tcg')] [string] $Accelerator = 'Auto',
    [int] $ColdBoots = 3,
    [int] $EvalRounds = 30,
    [int] $ExecRounds = 5
)
$ErrorActionPreference = 'Stop'
$root = Split-Path $PSScriptRoot -Parent
$results = Join-Path $PSScriptRoot 'results'
New-Item -ItemType Directory -Force $results | Out-Null
Import-Module (Resolve-Path $ModulePath).Path -Force
$env:FORKD_DATA_DIR = Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-data-$PID"
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $root '.cache' }

function Get-Median([double[]] $Values) {
    $s = $Values | Sort-Object
    if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 }
}

$tag = 'bench'
$code = 'sum(i * i for i in range(1000))'
try {
    Write-Host "==> image and cold boots ($ColdBoots)"
    $boots = foreach ($i in 1..$ColdBoots) {
        $snap = New-ForkdSnapshot -Tag $tag -Recipe $Recipe -Accelerator $Accelerator -Force `
            -WarmupCode "import json, math`nwarm = {'ready': True}"
        Write-Host ("    boot {0}: {1:N2} s to first agent reply ({2})" -f $i, $snap.BootTime.TotalSeconds, $snap.AcceleratorReason)
        $snap.BootTime.TotalMilliseconds
    }
    $accel = "$($snap.Accelerator)".ToUpperInvariant() # an enum since issue 11 (conv2)
    $guestMiB = $snap.MemoryMiB
    $cold = Get-Median $boots

    $fork = [ordered]@{}
    $memory = $null
    foreach ($n in 1, 4, 16) {
        $reps = if ($n -eq 16) { 1 } else { 3 }
        $walls = foreach ($r in 1..$reps) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $children = @(Invoke-ForkdFork -Tag $tag -Count $n)
            $wall = $sw.Elapsed.TotalMilliseconds
            if ($children.Count -ne $n) { throw "fork of $n returned $($children.Count) children" }
            Write-Host ("    fork {0,2}: all agents replying after {1:N0} ms (restore median {2:N0} ms)" -f $n, $wall, (Get-Median $children.RestoreTime))
            if ($n -eq 16 -and $r -eq $reps) {
                Start-Sleep -Seconds 3 # idle: let the children settle before measuring
                $memory = foreach ($c in $children) { [Forkd.Core.Host.ProcessMemory]::Measure($c.ProcessId, $c.MemoryFile) }
            }
            if ($n -eq 1 -and $r -eq $reps) {
                $one = $children[0]
            } else {
                $children | Stop-ForkdChild -Confirm:$false
            }
            $wall
        }
        $fork["$n"] = Get-Median $walls
    }

    Write-Host "==> eval vs exec on one child"
    $null = $one | Invoke-ForkdEval -Code $code # first call warms the connection path
    $evalAgent = [Collections.Generic.List[double]]::new(); $evalWall = [Collections.Generic.List[double]]::new()
    foreach ($i in 1..$EvalRounds) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $r = $one | Invoke-ForkdEval -Code $code
        $evalWall.Add($sw.Elapsed.TotalMilliseconds); $evalAgent.Add($r.DurationMs)
        if ($r.Value -ne 332833500) { throw "eval returned $($r.Value)" }
    }
    $execAgent = [Collections.Generic.List[double]]::new(); $execWall = [Collections.Generic.List[double]]::new()
    foreach ($i in 1..$ExecRounds) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $r = $one | Invoke-ForkdExec -Command 'python3', '-c', "print($code)"
        $execWall.Add($sw.Elapsed.TotalMilliseconds); $execAgent.Add($r.DurationMs)
        if ($r.Stdout.Trim() -ne '332833500') { throw "exec printed $($r.Stdout)" }
    }
    $one | Stop-ForkdChild -Confirm:$false
    Remove-ForkdSnapshot -Tag $tag -Confirm:$false

    $m = @{
        RamPrivate  = ($memory | Measure-Object GuestRamPrivateBytes -Average).Average / 1MB
        RamPss      = ($memory | Measure-Object GuestRamPssBytes -Average).Average / 1MB
        ProcPrivate = ($memory | Measure-Object ProcessPrivateBytes -Average).Average / 1MB
        ProcPss     = ($memory | Measure-Object ProcessPssBytes -Average).Average / 1MB
    }
    $evalMs = Get-Median $evalAgent; $execMs = Get-Median $execAgent
    $cpu = ((Get-Content /proc/cpuinfo | Select-String '^model name\s*:\s*(.+)$' | Select-Object -First 1).Matches.Groups[1].Value)
    $goal = { param($ok) if ($ok) { 'met' } else { 'NOT met' } }
    $md = @"
## Fork-from-warm benchmark ($accel, recipe $Recipe, $guestMiB MiB guest RAM)

Host: $([Environment]::ProcessorCount) CPUs ($cpu), QEMU $((& qemu-system-x86_64 --version | Select-Object -First 1) -replace '^QEMU emulator version ', ''), accelerator **$accel**. One run of ``bench/fork.bench.ps1``, $(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC.

| Measure | Result |
|---|---:|
| Cold boot to first agent reply (median of $ColdBoots) | $('{0:N0}' -f $cold) ms |
| Fork 1 child, agent replying (median of 3) | $('{0:N0}' -f $fork['1']) ms |
| Fork 4 children, all agents replying (median of 3) | $('{0:N0}' -f $fork['4']) ms |
| Fork 16 children, all agents replying | $('{0:N0}' -f $fork['16']) ms |
| Idle child (of 16): private pages in the guest-RAM mapping | $('{0:N2}' -f $m.RamPrivate) MiB ($('{0:P2}' -f ($m.RamPrivate / $guestMiB)) of guest RAM) |
| Idle child (of 16): PSS of the guest-RAM mapping | $('{0:N2}' -f $m.RamPss) MiB |
| Idle child (of 16): whole VMM process private (guest RAM + QEMU/TCG overhead) | $('{0:N2}' -f $m.ProcPrivate) MiB ($('{0:P1}' -f ($m.ProcPrivate / $guestMiB)) of guest RAM) |
| Idle child (of 16): whole VMM process PSS | $('{0:N2}' -f $m.ProcPss) MiB |
| ``eval`` round trip, ``$code`` (median of $EvalRounds; cmdlet wall $('{0:N1}' -f (Get-Median $evalWall)) ms) | $('{0:N2}' -f $evalMs) ms |
| ``exec`` of ``python3 -c`` for the same expression (median of $ExecRounds; cmdlet wall $('{0:N0}' -f (Get-Median $execWall)) ms) | $('{0:N0}' -f $execMs) ms |

| Goal | Ratio | |
|---|---:|---|
| One child ready ≥ 20× sooner than a cold boot | $('{0:N1}' -f ($cold / $fork['1']))× | $(& $goal (($cold / $fork['1']) -ge 20)) |
| Idle child's private guest memory < 5% of guest RAM | $('{0:P2}' -f ($m.RamPrivate / $guestMiB)) | $(& $goal (($m.RamPrivate / $guestMiB) -lt 0.05)) |
| Idle child's whole-process private memory < 5% of guest RAM (VMM overhead included) | $('{0:P1}' -f ($m.ProcPrivate / $guestMiB)) | $(& $goal (($m.ProcPrivate / $guestMiB) -lt 0.05)) |
| ``eval`` ≥ 20× faster than ``exec`` | $('{0:N0}' -f ($execMs / $evalMs))× | $(& $goal (($execMs / $evalMs) -ge 20)) |
"@
    Set-Content (Join-Path $results 'fork.md') $md
    Write-Host $md

    # Chart: times on a log scale, memory per idle child beside it.
    $data = @{ accel = $accel; guest_mib = $guestMiB
        times = [ordered]@{ 'cold boot' = $cold; 'fork 1' = $fork['1']; 'fork 4' = $fork['4']; 'fork 16' = $fork['16']; 'exec python3 -c' = $execMs; 'eval' = $evalMs }
        memory = [ordered]@{ 'guest RAM private' = $m.RamPrivate; 'guest RAM PSS' = $m.RamPss; 'process private' = $m.ProcPrivate; 'process PSS' = $m.ProcPss } }
    $json = Join-Path $results 'fork.json'
    $data | ConvertTo-Json -Depth 4 | Set-Content $json
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
