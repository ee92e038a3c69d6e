# The guest agent channel with real QEMU VMs (TCG where KVM cannot boot Linux): bounded replies (an exec
# flood is cut in the guest; a hostile 1 GiB reply is refused with pwsh's memory measured), warm state loss
# (an eval or exec that kills the agent), and cancellation reaching the guest (PowerShell.Stop() and
# -TimeoutSec of a 30 s eval, then the next eval within a second). One snapshot, four children, each test
# on its own child. Budget: ~2-4 min on 2 cores (plus a guest image rebuild when guest/ changed).
Describe 'Guest agent channel' -Tag Agent {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        $null = New-ForkdSnapshot -Tag agt -Recipe minimal -WarmupCode "warm = {'token': 'w4rm'}"
        $script:children = @(Invoke-ForkdFork -Tag agt -Count 4)
        $script:flood, $script:evalKill, $script:execKill, $script:hostile = $children

        function Measure-NextEval([string] $Id) {
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $r = Invoke-ForkdEval -Id $Id -Code "warm['token']" -TimeoutSec 10
            $clock.Stop()
            [pscustomobject]@{ Result = $r; Seconds = $clock.Elapsed.TotalSeconds }
        }
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'records the agent generation of the snapshot on every child' {
        foreach ($c in $children) { $c.AgentGeneration | Should -Match '^[0-9a-f]{16}$' }
        ($children.AgentGeneration | Sort-Object -Unique).Count | Should -Be 1
    }

    It 'cuts an exec that floods stdout in the guest, says how much, and the child stays usable' {
        $r = Invoke-ForkdExec -Id $flood.Id -Command sh, -c, 'yes | head -c 40000000' -TimeoutSec 120
        $r.Error | Should -BeNullOrEmpty
        $r.ExitCode | Should -Be 0
        $r.StdoutBytesDropped | Should -BeGreaterThan 0
        ($r.Stdout.Length + $r.StdoutBytesDropped) | Should -Be 40000000
        [Text.Encoding]::UTF8.GetByteCount($r.Stdout) | Should -BeLessOrEqual 16MB

        $endless = Invoke-ForkdExec -Id $flood.Id -Command yes -TimeoutSec 3 -NoGuestError
        $endless.Error | Should -BeLike 'TimeoutExpired:*'
        (Measure-NextEval $flood.Id).Result.Value | Should -Be 'w4rm'
    }

    It 'refuses a hostile 1 GiB reply without newline with AgentReplyTooLarge while pwsh memory stays under twice the cap' {
        # The evaluated code writes straight into the agent's own virtio-serial port: no agent would send this.
        $floodCode = "import os`nfd = next(int(f) for f in os.listdir('/proc/self/fd') if os.readlink('/proc/self/fd/' + f).startswith('/dev/vport'))`nchunk = b'x' * (1 << 20)`nfor _ in range(1024):`n    os.write(fd, chunk)"
        $script = @"
Import-Module '$env:FORKD_MODULE_PATH'
`$null = Invoke-ForkdEval -Id '$($hostile.Id)' -Code 'len(warm)'
function Kib([string] `$f) { [long](((Get-Content /proc/self/status | Where-Object { `$_ -like "`${f}:*" }) -split '\s+')[1]) }
[GC]::Collect()
[IO.File]::WriteAllText('/proc/self/clear_refs', '5')  # resets VmHWM (peak RSS) to the current RSS
`$before = Kib VmRSS
`$clock = [Diagnostics.Stopwatch]::StartNew()
`$out = Invoke-ForkdEval -Id '$($hostile.Id)' -Code `$env:FLOOD_CODE -TimeoutSec 300 -ErrorVariable e -ErrorAction SilentlyContinue
[pscustomobject]@{ ErrorId = `$e[0].FullyQualifiedErrorId; Output = @(`$out).Count; BeforeKiB = `$before; PeakKiB = (Kib VmHWM); Seconds = `$clock.Elapsed.TotalSeconds } | ConvertTo-Json -Compress
"@
        $env:FLOOD_CODE = $floodCode
        try { $line = & $pwsh -NoProfile -NonInteractive -Command $script | Select-Object -Last 1 } finally { Remove-Item Env:FLOOD_CODE }
        $m = $line | ConvertFrom-Json
        $growthMiB = ($m.PeakKiB - $m.BeforeKiB) / 1024
        Write-Host ("  hostile flood: {0} after {1:0.0} s; pwsh peak RSS growth {2:0.0} MiB (cap 16 MiB)" -f $m.ErrorId, $m.Seconds, $growthMiB)
        $m.ErrorId | Should -BeLike 'AgentReplyTooLarge,*'
        $m.Output | Should -Be 0
        $growthMiB | Should -BeLessThan 32
    }

    It 'reports WarmStateLost at once when the eval kills the agent, and on every later call' {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $r = Invoke-ForkdEval -Id $evalKill.Id -Code 'import os; os._exit(1)' -TimeoutSec 120 -ErrorVariable lost -ErrorAction SilentlyContinue
        $clock.Stop()
        $r | Should -BeNullOrEmpty
        $lost[0].FullyQualifiedErrorId | Should -BeLike 'WarmStateLost,*'
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 30
        Write-Host ("  eval os._exit(1): WarmStateLost after {0:0.0} s" -f $clock.Elapsed.TotalSeconds)

        # Not a NameError from a cold interpreter: the restarted agent is recognised on every call.
        $null = Invoke-ForkdEval -Id $evalKill.Id -Code "warm['token']" -ErrorVariable later -ErrorAction SilentlyContinue
        $later[0].FullyQualifiedErrorId | Should -BeLike 'WarmStateLost,*'
        $null = Invoke-ForkdExec -Id $evalKill.Id -Command true -ErrorVariable laterExec -ErrorAction SilentlyContinue
        $laterExec[0].FullyQualifiedErrorId | Should -BeLike 'WarmStateLost,*'
        $status = Test-ForkdAgent -Id $evalKill.Id
        $status.Responding | Should -BeTrue
        $status.WarmStateLost | Should -BeTrue
    }

    It 'reports WarmStateLost when an exec kills the agent with kill -9' {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $null = Invoke-ForkdExec -Id $execKill.Id -Command sh, -c, 'kill -9 $PPID; sleep 60' -TimeoutSec 120 -ErrorVariable lost -ErrorAction SilentlyContinue
        $clock.Stop()
        $lost[0].FullyQualifiedErrorId | Should -BeLike 'WarmStateLost,*'
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 30
        Write-Host ("  exec kill -9 of the agent: WarmStateLost after {0:0.0} s" -f $clock.Elapsed.TotalSeconds)
        $null = Invoke-ForkdEval -Id $execKill.Id -Code "warm['token']" -ErrorVariable later -ErrorAction SilentlyContinue
        $later[0].FullyQualifiedErrorId | Should -BeLike 'WarmStateLost,*'
    }

    It 'interrupts a 30 s eval stopped with PowerShell.Stop() (Ctrl+C) and answers the next eval within a second' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:FORKD_MODULE_PATH'; Invoke-ForkdEval -Id '$($flood.Id)' -Code 'import time; time.sleep(30)' -TimeoutSec 120")
            $handle = $ps.BeginInvoke()
            Start-Sleep -Seconds 3
            $handle.IsCompleted | Should -BeFalse
            $stopClock = [Diagnostics.Stopwatch]::StartNew()
            $ps.Stop()
            $stopClock.Stop()
        } finally { $ps.Dispose() }
        $next = Measure-NextEval $flood.Id
        Write-Host ("  after Stop(): Stop took {0:0.00} s, next eval {1:0.00} s" -f $stopClock.Elapsed.TotalSeconds, $next.Seconds)
        $next.Result.Value | Should -Be 'w4rm'
        $next.Seconds | Should -BeLessThan 1
    }

    It 'interrupts a 30 s eval at -TimeoutSec 2 and answers the next eval within a second' {
        $null = Invoke-ForkdEval -Id $flood.Id -Code 'import time; time.sleep(30)' -TimeoutSec 2 -ErrorVariable timedOut -ErrorAction SilentlyContinue
        $timedOut[0].FullyQualifiedErrorId | Should -BeLike 'AgentTimeout,*'
        $next = Measure-NextEval $flood.Id
        Write-Host ("  after -TimeoutSec 2: next eval {0:0.00} s" -f $next.Seconds)
        $next.Result.Value | Should -Be 'w4rm'
        $next.Seconds | Should -BeLessThan 1
    }
}
