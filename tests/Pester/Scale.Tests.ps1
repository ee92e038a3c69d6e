# Many children at once on this host (QEMU/TCG here): 32 children of one snapshot fork, each answers with
# the parent's warm state, idle ones do not wake up on a timer, and one pipeline stops them all. Correctness,
# not timing: bench/fork.bench.ps1 measures the costs. Budget: well under a minute on 2 cores.
Describe 'Thirty-two children of one snapshot' -Tag Scale {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $null = New-ForkdSnapshot -Tag scale -Recipe minimal -WarmupCode "warm = {'token': 's32'}"
        $script:children = @(Invoke-ForkdFork -Tag scale -Count 32)

        # Context switches of every thread of a process: each one is a wake-up.
        function Get-Wakeups([int] $ProcessId) {
            $n = 0
            foreach ($status in Get-ChildItem "/proc/$ProcessId/task/*/status" -ErrorAction SilentlyContinue) {
                foreach ($line in Get-Content $status.FullName) {
                    if ($line -match '^(non)?voluntary_ctxt_switches:\s+(\d+)') { $n += [long]$Matches[2] }
                }
            }
            $n
        }
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'forks 32 running children, each its own VMM with its start stages recorded' {
        $children.Count | Should -Be 32
        ($children.ProcessId | Sort-Object -Unique).Count | Should -Be 32
        ($children.Index | Sort-Object) | Should -Be (1..32)
        foreach ($c in $children) {
            $c.State | Should -Be Running
            $c.StartStages.VmmStart | Should -BeGreaterThan ([TimeSpan]::Zero)
            $c.StartStages.StateLoad | Should -BeGreaterThan ([TimeSpan]::Zero)
            $c.StartStages.AgentReady | Should -BeGreaterThan ([TimeSpan]::Zero)
            $c.StartStages.Engine | Should -BeGreaterThan ([TimeSpan]::Zero)
        }
        @(Get-ForkdChild -Tag scale).Count | Should -Be 32
    }

    It 'every child answers its first eval with the warm state, and what it writes stays its own' {
        $first = @($children | Invoke-ForkdEval -Code "warm['token']" -ThrottleLimit 8)
        $first.Count | Should -Be 32
        $first | ForEach-Object { $_.Succeeded | Should -BeTrue; $_.Value | Should -Be 's32' }
        $children | ForEach-Object { $_ | Invoke-ForkdEval -Code "mine = $($_.Index)" } | Out-Null
        $mine = @($children | Invoke-ForkdEval -Code 'mine' -ThrottleLimit 8)
        foreach ($r in $mine) {
            $r.Value | Should -Be ($children | Where-Object Id -eq $r.ChildId).Index
        }
    }

    It 'idle children do not wake up on a timer (no polling agent, no PIT, no guest watchdog)' {
        # Under TCG every wake-up of an idle guest runs translated code: a polling agent or QEMU's PIT model
        # woke each child dozens of times a second. An idle child now wakes only for rare guest timers.
        Start-Sleep -Seconds 2
        $before = @{}; foreach ($c in $children) { $before[$c.Id] = Get-Wakeups $c.ProcessId }
        Start-Sleep -Seconds 5
        $rates = foreach ($c in $children) { ((Get-Wakeups $c.ProcessId) - $before[$c.Id]) / 5.0 }
        $median = ($rates | Sort-Object)[16]
        $median | Should -BeLessThan 10 -Because "an idle child's VMM woke $median times a second (median of 32)"
    }

    It 'stops all of them with one pipeline and leaves no VMM, record or work dir' {
        $workDirs = $children.WorkDirectory
        $stopped = @(Get-ForkdChild | Stop-ForkdChild -Confirm:$false -PassThru)
        $stopped.Count | Should -Be 32
        @(Get-ForkdChild).Count | Should -Be 0
        # (A killed daemon may stay a zombie until init reaps it: alive means running, not a /proc entry.)
        foreach ($c in $children) { [Forkd.Core.Host.ProcessControl]::IsAlive($c.ProcessId) | Should -BeFalse }
        foreach ($d in $workDirs) { Test-Path $d | Should -BeFalse }
    }
}
