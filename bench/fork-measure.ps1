# Measuring helpers for fork.bench.ps1 (dot-sourced): medians, a process's CPU and wake-ups from /proc,
# start-stage medians, host memory. Kept apart so the bench script reads as the run it is.

function Get-Median([double[]] $Values) {
    $s = @($Values | Sort-Object)
    if ($s.Count -eq 0) { return $null }
    if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 }
}

# CPU time (ns; the engine's own reading, as New-ForkdSnapshot's settle check uses it) and wake-ups (context
# switches) of every thread of a process.
function Get-VmmActivity([int] $ProcessId) {
    $cpu = [Forkd.Core.Host.VmmQuiescence]::CpuTime($ProcessId)
    $ns = if ($null -ne $cpu) { [long]$cpu.Ticks * 100 } else { 0L }
    $wakeups = 0L
    foreach ($task in Get-ChildItem "/proc/$ProcessId/task" -Directory -ErrorAction SilentlyContinue) {
        foreach ($line in Get-Content (Join-Path $task.FullName 'status') -ErrorAction SilentlyContinue) {
            if ($line -match '^(non)?voluntary_ctxt_switches:\s+(\d+)') { $wakeups += [long]$Matches[2] }
        }
    }
    [pscustomobject]@{ CpuNs = $ns; Wakeups = $wakeups }
}

# Idle cost per child over $Seconds: % of one core and wake-ups per second (means over the children).
function Measure-IdleCost($Children, [int] $Seconds) {
    $before = @{}; foreach ($c in $Children) { $before[$c.Id] = Get-VmmActivity $c.ProcessId }
    Start-Sleep -Seconds $Seconds
    $cpu = 0.0; $wake = 0.0
    foreach ($c in $Children) {
        $after = Get-VmmActivity $c.ProcessId
        $cpu += ($after.CpuNs - $before[$c.Id].CpuNs) / 1e9
        $wake += $after.Wakeups - $before[$c.Id].Wakeups
    }
    [pscustomobject]@{
        CorePercent      = 100.0 * $cpu / $Seconds / $Children.Count
        WakeupsPerSecond = $wake / $Seconds / $Children.Count
    }
}

$script:StageNames = 'VmmStart', 'ControlConnect', 'StateLoad', 'Resume', 'AgentReady', 'Engine'

# Median milliseconds of each start stage over a fork's children.
function Get-StageMedians($Children) {
    $row = [ordered]@{}
    foreach ($name in $script:StageNames) {
        $row[$name] = Get-Median @($Children | ForEach-Object { $_.StartStages.$name.TotalMilliseconds })
    }
    $row['Ready'] = Get-Median @($Children | ForEach-Object { $_.Ready.TotalMilliseconds })
    $row
}

function Get-MemAvailableMiB {
    $line = Get-Content /proc/meminfo | Where-Object { $_ -like 'MemAvailable:*' }
    [long](($line -split '\s+')[1]) / 1024
}

# A timed fork: wall clock until every agent replies; throws unless all $Count children came up.
function Invoke-TimedFork([string] $Tag, [int] $Count) {
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $children = @(Invoke-ForkdFork -Tag $Tag -Count $Count)
    $wall = $sw.Elapsed.TotalMilliseconds
    if ($children.Count -ne $Count) { throw "fork of $Count returned $($children.Count) children" }
    [pscustomobject]@{ Wall = $wall; Children = $children }
}

# Every VMM of this data dir must be gone: the registry, the process table and the work dirs agree.
function Assert-NothingLeft($Children) {
    $left = @(Get-ForkdChild)
    $alive = @($Children | Where-Object { [Forkd.Core.Host.ProcessControl]::IsAlive($_.ProcessId) })
    $dirs = @($Children | Where-Object { Test-Path $_.WorkDirectory })
    if ($left.Count -or $alive.Count -or $dirs.Count) {
        throw "left behind: $($left.Count) records, $($alive.Count) VMMs, $($dirs.Count) work dirs"
    }
}

# Medians (ms, as the agent measured them) of an eval and of an exec of `python3 -c` for the same expression.
function Measure-EvalVsExec($Child, [string] $Code, [int] $EvalRounds, [int] $ExecRounds) {
    $null = $Child | Invoke-ForkdEval -Code $Code # the first call warms the connection path
    $evals = foreach ($i in 1..$EvalRounds) {
        $r = $Child | Invoke-ForkdEval -Code $Code
        if ($r.Value -ne 332833500) { throw "eval returned $($r.Value)" }
        $r.Duration.TotalMilliseconds
    }
    $execs = foreach ($i in 1..$ExecRounds) {
        $r = $Child | Invoke-ForkdExec -Command 'python3', '-c', "print($Code)"
        if ($r.Stdout.Trim() -ne '332833500') { throw "exec printed $($r.Stdout)" }
        $r.Duration.TotalMilliseconds
    }
    [pscustomobject]@{ Eval = Get-Median $evals; Exec = Get-Median $execs }
}

# Median wall clock of 7 forks of 4 children (each stopped before the next).
function Measure-Fork4([string] $Tag) {
    Get-Median @(foreach ($i in 1..7) {
        $run = Invoke-TimedFork $Tag 4
        $run.Children | Stop-ForkdChild -Confirm:$false
        $run.Wall
    })
}
