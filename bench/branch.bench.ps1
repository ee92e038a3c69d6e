#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Branch benchmark: the pause window of Checkpoint-ForkdChild Full vs Diff, and fork time along a diff chain.
.DESCRIPTION
    One run, side by side, on one guest image and accelerator (named in the output):
      - for each guest size (-MemoryMiB) and each share of guest RAM dirtied after the fork (-DirtyPercent), one
        child dirties that much RAM (a Python bytearray filled with a non-zero byte) and is checkpointed, Full and
        Diff taking turns, -Repeat times each, every checkpoint of a child of its own in the same state; the source's
        median pause window (PauseTime) per mode, every run's pause, bytes written and pages captured;
      - fork time (Invoke-ForkdFork of one child until its agent replies, wall clock) of the root snapshot (chain
        depth 0), of diff chains of depth 1, 2 and 3 (first fork: verify + assemble; second fork: verify only,
        the assembled memory is cached) and of the merged (Merge-ForkdSnapshot) copy of the depth-3 chain.
    Writes bench/results/branch.json and bench/results/branch.md and prints the tables.
.EXAMPLE
    ./bench/branch.bench.ps1 -ModulePath out/Forkd/Forkd.psd1 -MemoryMiB 256, 1024 -DirtyPercent 1, 10, 50
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Recipe = 'minimal',
    [int[]] $MemoryMiB = @(256),
    [int[]] $DirtyPercent = @(1, 10, 50),
    [int] $ChainMemoryMiB = 256,
    [ValidateRange(1, 15)] [int] $Repeat = 3,
    [string] $Note = ''
)
$ErrorActionPreference = 'Stop'
$root = Split-Path $PSScriptRoot -Parent
$results = Join-Path $PSScriptRoot 'results'
New-Item -ItemType Directory -Force $results | Out-Null
Import-Module (Resolve-Path $ModulePath).Path -Force
$env:FORKD_DATA_DIR = Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-branch-$PID"
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $root '.cache' }

function Invoke-Eval($Child, [string] $Code) {
    $r = $Child | Invoke-ForkdEval -Code $Code -TimeoutSec 300
    if ($r.Error) { throw "eval failed in $($Child.Id): $($r.Error)" }
    $r.Value
}

# Dirties $Percent of guest RAM with non-zero bytes (kept alive in `blob`), in 1 MiB steps.
function Set-Dirty($Child, [int] $Mib, [int] $Percent) {
    $bytes = [long]($Mib * 1MB * $Percent / 100)
    Invoke-Eval $Child "blob = bytearray(b'\x5a') * $bytes; len(blob)" | Out-Null
}

# The run with the median pause (the middle one of an odd count, the lower middle of an even one).
function Select-Median([object[]] $Runs) {
    $sorted = @($Runs | Sort-Object { $_.PauseTime })
    $sorted[[math]::Floor(($sorted.Count - 1) / 2)]
}

function Measure-Fork([string] $Tag) {
    sync # the assembled image of the last fork is still being written back otherwise
    $clock = [Diagnostics.Stopwatch]::StartNew()
    $child = Invoke-ForkdFork -Tag $Tag
    $ms = $clock.Elapsed.TotalMilliseconds
    $child | Stop-ForkdChild -Confirm:$false
    [math]::Round($ms, 1)
}

$pauses = [Collections.Generic.List[object]]::new()
$forks = [Collections.Generic.List[object]]::new()
$accel = $null
try {
    foreach ($mib in $MemoryMiB) {
        $tag = "bb$mib"
        Write-Host "==> snapshot $tag ($mib MiB)"
        $snap = New-ForkdSnapshot -Tag $tag -Recipe $Recipe -MemoryMiB $mib
        $accel = "$($snap.Accelerator)".ToLowerInvariant() # the JSON keeps "tcg", not the enum's number
        foreach ($pct in $DirtyPercent) {
            # Each checkpoint on its own child, freshly forked and dirtied the same way, Full and Diff taking turns,
            # $Repeat times; the medians are compared. A child is not reused: Full reads all of RAM through
            # /proc/<pid>/mem, which maps every page into the VMM's page tables and makes a later Diff's scan of them
            # slower than any Diff of a child that never had a Full. `sync` before each pause, or the kernel's writeback
            # of the last checkpoint's files competes with it for the two cores.
            $fulls = @(); $diffs = @()
            foreach ($rep in 1..$Repeat) {
                foreach ($mode in 'Full', 'Diff') {
                    $child = Invoke-ForkdFork -Tag $tag
                    try {
                        Set-Dirty $child $mib $pct
                        sync
                        $result = $child | Checkpoint-ForkdChild -Tag "$tag-$mode-$pct-$rep" -Mode $mode
                        if ($mode -eq 'Full') { $fulls += $result } else { $diffs += $result }
                    }
                    finally {
                        $child | Stop-ForkdChild -Confirm:$false
                        Remove-ForkdSnapshot -Tag "$tag-$mode-$pct-$rep" -Force -Confirm:$false -ErrorAction SilentlyContinue
                    }
                }
            }

            $full = Select-Median $fulls
            $diff = Select-Median $diffs
            # Where each pause went (ms per step and its parts, stop to cont).
            $phases = { param($r) ($r.PausePhases.GetEnumerator() | ForEach-Object { '{0} {1}' -f $_.Key, $_.Value }) -join '; ' }
            $ms = { param($list) @($list | ForEach-Object { [math]::Round($_.PauseTime.TotalMilliseconds, 1) }) }
            $row = [pscustomobject]@{
                MemoryMiB = $mib; DirtyPercent = $pct
                DirtyMeasuredPercent = [math]::Round(100.0 * $diff.CapturedPages / $diff.TotalPages, 1)
                FullPauseMs = [math]::Round($full.PauseTime.TotalMilliseconds, 1)
                DiffPauseMs = [math]::Round($diff.PauseTime.TotalMilliseconds, 1)
                DiffToFull = [math]::Round($diff.PauseTime.TotalMilliseconds / $full.PauseTime.TotalMilliseconds, 3)
                FullRunsMs = & $ms $fulls
                DiffRunsMs = & $ms $diffs
                FullMiB = [math]::Round($full.BytesWritten / 1MB, 1)
                DiffMiB = [math]::Round($diff.BytesWritten / 1MB, 1)
                FullPhases = & $phases $full
                DiffPhases = & $phases $diff
            }
            $pauses.Add($row)
            Write-Host ("  {0} MiB, {1}% dirty ({2}% measured): Full pause {3} ms ({4}), Diff {5} ms ({6}), Diff/Full {7}" -f $mib, $pct,
                $row.DirtyMeasuredPercent, $row.FullPauseMs, ($row.FullRunsMs -join ', '), $row.DiffPauseMs, ($row.DiffRunsMs -join ', '), $row.DiffToFull)
            Write-Host "    Full: $($row.FullPhases)"
            Write-Host "    Diff: $($row.DiffPhases)"
        }

        if ($mib -ne $ChainMemoryMiB) {
            Remove-ForkdSnapshot -Tag $tag -Force -Confirm:$false
        }
    }

    # The chain: each link a child of the previous one, 1% of RAM dirtied, checkpointed Diff.
    $tag = "bb$ChainMemoryMiB"
    if (-not (Get-ForkdSnapshot -Tag $tag -ErrorAction SilentlyContinue)) { New-ForkdSnapshot -Tag $tag -Recipe $Recipe -MemoryMiB $ChainMemoryMiB | Out-Null }
    Write-Host "==> chain of 3 diffs over $tag"
    $links = @($tag)
    foreach ($depth in 1..3) {
        $child = Invoke-ForkdFork -Tag $links[-1]
        Set-Dirty $child $ChainMemoryMiB 1
        Invoke-Eval $child "link = $depth" | Out-Null
        $next = "$tag-c$depth"
        $child | Checkpoint-ForkdChild -Tag $next -Mode Diff | Out-Null
        $child | Stop-ForkdChild -Confirm:$false
        $links += $next
    }

    foreach ($depth in 0..3) {
        $first = Measure-Fork $links[$depth]
        $second = Measure-Fork $links[$depth]
        $forks.Add([pscustomobject]@{ Snapshot = $links[$depth]; Depth = $depth; FirstForkMs = $first; SecondForkMs = $second })
        Write-Host "  depth $depth ($($links[$depth])): first fork $first ms, second $second ms"
    }

    Merge-ForkdSnapshot -Tag $links[3] -DestinationTag "$tag-flat" | Out-Null
    $first = Measure-Fork "$tag-flat"
    $second = Measure-Fork "$tag-flat"
    $forks.Add([pscustomobject]@{ Snapshot = "$tag-flat"; Depth = 'merged'; FirstForkMs = $first; SecondForkMs = $second })
    Write-Host "  merged: first fork $first ms, second $second ms"
}
finally {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    Get-ForkdSnapshot -ErrorAction SilentlyContinue | Sort-Object Tag -Descending | Remove-ForkdSnapshot -Force -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $env:FORKD_DATA_DIR -ErrorAction SilentlyContinue
}

$load = (Get-Content /proc/loadavg -Raw).Trim()
$meta = [ordered]@{ Date = (Get-Date).ToUniversalTime().ToString('u'); Recipe = $Recipe; Accelerator = $accel; Cpus = [Environment]::ProcessorCount; Repeat = $Repeat; LoadAvg = $load; Note = $Note }
[ordered]@{ Meta = $meta; Pauses = $pauses; Forks = $forks } | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $results 'branch.json')
$md = @("# Branch benchmark", "", "$($meta.Date), recipe $Recipe, accelerator $accel, $($meta.Cpus) CPUs, load average at the end: $load. $Note", "",
    "## Pause window: Checkpoint-ForkdChild Full vs Diff", "",
    "Median of $Repeat checkpoints per mode, each of its own child forked and dirtied the same way (every run in brackets, in order).", "",
    "| Guest MiB | Dirtied (asked) | Dirtied (pages captured by Diff) | Full pause ms | Diff pause ms | Diff / Full | Full MiB written | Diff MiB written |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|")
$md += $pauses | ForEach-Object { "| $($_.MemoryMiB) | $($_.DirtyPercent) % | $($_.DirtyMeasuredPercent) % | $($_.FullPauseMs) ($($_.FullRunsMs -join ', ')) | $($_.DiffPauseMs) ($($_.DiffRunsMs -join ', ')) | $($_.DiffToFull) | $($_.FullMiB) | $($_.DiffMiB) |" }
$md += @("", "### Where the pause went (ms per step, side by side with the ratio)", "",
    "| Guest MiB | Dirtied | Diff / Full | Full pause: steps | Diff pause: steps |", "|---:|---:|---:|---|---|")
$md += $pauses | ForEach-Object { "| $($_.MemoryMiB) | $($_.DirtyPercent) % | $($_.DiffToFull) | $($_.FullPhases) | $($_.DiffPhases) |" }
$md += @("", "## Fork time along a diff chain ($ChainMemoryMiB MiB guest, 1 % dirtied per link)", "",
    "| Snapshot | Chain depth | First fork ms (verify + assemble) | Second fork ms (verify, cached memory) |", "|---|---:|---:|---:|")
$md += $forks | ForEach-Object { "| $($_.Snapshot) | $($_.Depth) | $($_.FirstForkMs) | $($_.SecondForkMs) |" }
$md | Set-Content (Join-Path $results 'branch.md')
$md -join "`n"
