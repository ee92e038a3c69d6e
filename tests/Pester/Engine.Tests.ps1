# The fork-from-warm engine over the built module with real QEMU VMs (TCG on hosts whose KVM cannot
# boot Linux). One parent is booted and snapshotted, four children are forked from it and checked,
# then everything is stopped. The guest image comes from $env:FORKD_CACHE_DIR (<repo>/.cache by
# default), so the image build is shared with the Image tests. Budget: ~1-2 min on 2 cores.
Describe 'Fork-from-warm engine' -Tag Engine {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        $script:warmup = "warm = {'token': 'w4rm', 'squares': [i * i for i in range(100)]}"
        $script:snapshot = New-ForkdSnapshot -Tag eng -Recipe minimal -WarmupCode $warmup -Verbose 4>&1 |
            ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { Write-Host "  $($_.Message)" } else { $_ } }
        $script:children = @(Invoke-ForkdFork -Tag eng -Count 4)
        $script:guestRam = $snapshot.MemoryMiB * 1MB

        # True when a process ignores SIGINT. A runner that starts the suite in the background makes every
        # descendant ignore it and .NET keeps an inherited ignore, so the Ctrl+C tests start their pwsh
        # through `env --default-signal=INT`; this check stays as a guard with a visible skip.
        function Test-SigIntIgnored([int] $ProcessId) {
            $line = Get-Content "/proc/$ProcessId/status" -ErrorAction SilentlyContinue | Where-Object { $_ -like 'SigIgn:*' }
            $line -and (([Convert]::ToUInt64(($line -split '\s+')[1], 16) -band 2) -ne 0)
        }

        # Runs a script in a fresh pwsh with the same module and data dir; returns its output lines.
        function Invoke-FreshSession([string] $Script) {
            & $script:pwsh -NoProfile -NonInteractive -Command "Import-Module '$env:FORKD_MODULE_PATH'; $Script"
        }
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'snapshots the parent with the accelerator it chose recorded' {
        $snapshot | Should -BeOfType ([Forkd.Core.Store.SnapshotInfo])
        $snapshot.IsComplete | Should -BeTrue
        # The object carries the parameters' enums; snapshot.json keeps forkd's lower-case names.
        $snapshot.Backend | Should -Be ([Forkd.Core.BackendKind]::Qemu)
        $snapshot.Accelerator | Should -BeOfType ([Forkd.Core.Accelerator])
        $meta = Get-Content (Join-Path $snapshot.Path 'snapshot.json') -Raw | ConvertFrom-Json
        $meta.backend | Should -BeExactly 'qemu'
        $meta.accelerator | Should -BeExactly "$($snapshot.Accelerator)".ToLowerInvariant()
        $meta.recipe | Should -Be 'minimal'
        # Self-contained: the kernel and initramfs children boot are inside the snapshot.
        $meta.backend_config.kernel | Should -Be 'vmlinux'
        Test-Path (Join-Path $snapshot.Path 'vmlinux') | Should -BeTrue
        Test-Path (Join-Path $snapshot.Path 'initramfs.img') | Should -BeTrue
        Get-ChildItem (Split-Path $snapshot.Path) | Select-Object -ExpandProperty Name | Should -Be @('eng')
    }

    It 'forks four running children, each its own VMM with the snapshot accelerator' {
        $children.Count | Should -Be 4
        $children | ForEach-Object { $_ | Should -BeOfType ([Forkd.Core.Store.ForkdChild]) }
        ($children.ProcessId | Sort-Object -Unique).Count | Should -Be 4
        ($children.Index | Sort-Object) | Should -Be @(1, 2, 3, 4)
        foreach ($c in $children) {
            $c.Tag | Should -Be 'eng'
            $c.Accelerator | Should -Be $snapshot.Accelerator
            $c.Backend | Should -Be ([Forkd.Core.BackendKind]::Qemu)
            $c.State | Should -Be 'Running'
            $c.RestoreTime | Should -BeGreaterThan 0
            $c.ReadyTime | Should -BeGreaterOrEqual $c.RestoreTime
            Test-Path $c.Agent.Address | Should -BeTrue
            (Get-Content "/proc/$($c.ProcessId)/cmdline" -Raw) -replace "`0", ' ' | Should -Match 'share=off'
        }
    }

    It 'every child evaluates the state the warm-up left (inherited, not recomputed)' {
        $results = @($children | Invoke-ForkdEval -Code "(warm['token'], sum(warm['squares']))")
        $results.Count | Should -Be 4
        ($results.ChildId | Sort-Object) | Should -Be ($children.Id | Sort-Object)
        foreach ($r in $results) {
            $r.Error | Should -BeNullOrEmpty
            $r.Value[0] | Should -Be 'w4rm'
            $r.Value[1] | Should -Be 328350
            $r.Repr | Should -Be "('w4rm', 328350)"
        }
    }

    It 'a write in one child is not seen by another' {
        $writer = $children[0]
        ($writer | Invoke-ForkdEval -Code "warm.update(token='changed-in-one')").Error | Should -BeNullOrEmpty
        ($writer | Invoke-ForkdEval -Code "warm['token']").Value | Should -Be 'changed-in-one'
        $others = @($children[1..3] | Invoke-ForkdEval -Code "warm['token']")
        $others.Value | Should -Be @('w4rm', 'w4rm', 'w4rm')
    }

    It 'children share guest RAM: their summed private memory is far below 4 x guest RAM' {
        $m = foreach ($c in $children) { [Forkd.Core.Host.ProcessMemory]::Measure($c.ProcessId, $c.MemoryFile) }
        $ramPrivate = ($m | Measure-Object GuestRamPrivateBytes -Sum).Sum
        $procPrivate = ($m | Measure-Object ProcessPrivateBytes -Sum).Sum
        Write-Host ("  guest-RAM private, 4 children: {0:N1} MiB of {1:N0} MiB; whole VMM processes: {2:N1} MiB private" -f ($ramPrivate / 1MB), (4 * $guestRam / 1MB), ($procPrivate / 1MB))
        # Each child maps the snapshot's memory file (resident pages come from it) ...
        $m | ForEach-Object { $_.GuestRamRssBytes | Should -BeGreaterThan 0 }
        # ... and has copied only a sliver of it.
        $ramPrivate | Should -BeLessThan (0.10 * 4 * $guestRam)
        $procPrivate | Should -BeLessThan (4 * $guestRam)
    }

    It 'lists the children from a new pwsh session (they outlive the cmdlet)' {
        $json = Invoke-FreshSession 'Get-ForkdChild | Select-Object Id, @{ n = ''State''; e = { "$($_.State)" } } | ConvertTo-Json -Compress'
        $listed = ($json | Out-String | ConvertFrom-Json)
        ($listed.Id | Sort-Object) | Should -Be ($children.Id | Sort-Object)
        $listed.State | Sort-Object -Unique | Should -Be 'Running'
    }

    It 'refuses to remove the snapshot while its children run' {
        { Remove-ForkdSnapshot -Tag eng -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'SnapshotInUse,*'
        (Get-ForkdSnapshot -Tag eng).IsComplete | Should -BeTrue
    }

    It 'gives a second operation on a busy tag TagInUse, and Ctrl+C during a snapshot leaves nothing behind' {
        $log = Join-Path $TestDrive 'busy.log'
        $proc = Start-Process env -PassThru -RedirectStandardOutput $log -ArgumentList @('--default-signal=INT', $pwsh, '-NoProfile', '-NonInteractive', '-Command',
            "Import-Module '$env:FORKD_MODULE_PATH'; New-ForkdSnapshot -Tag busy -Recipe minimal -Accelerator Tcg | Out-Null; 'done'")
        $parentPattern = "forkd-parent-busy-$($proc.Id)-"
        function Get-BusyParent {
            Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | Where-Object {
                try { [IO.File]::ReadAllText("$($_.FullName)/cmdline").Contains($parentPattern) } catch { $false }
            }
        }
        try {
            # Wait until the background snapshot holds the tag and its parent VM is booting.
            $deadline = [DateTime]::UtcNow.AddSeconds(120)
            while (-not (Get-BusyParent) -and -not $proc.HasExited -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Get-BusyParent | Should -Not -BeNullOrEmpty
            { New-ForkdSnapshot -Tag busy -Recipe minimal -Accelerator Tcg -ErrorAction Stop } | Should -Throw -ErrorId 'TagInUse,*'
            { Invoke-ForkdFork -Tag busy -ErrorAction Stop } | Should -Throw -ErrorId 'TagInUse,*'

            if (Test-SigIntIgnored $proc.Id) {
                $proc.Kill(); $proc.WaitForExit()
                [Forkd.Core.Engine.OrphanParents]::ReapAsync([Forkd.Core.Store.ForkdPaths]::FromEnvironment(), '/proc').GetAwaiter().GetResult() | Out-Null
                Set-ItResult -Skipped -Because 'SIGINT is ignored in this process tree, so Ctrl+C cannot be delivered'
                return
            }
            # Ctrl+C (SIGINT) in the middle of the boot.
            & kill -INT $proc.Id
            $proc.WaitForExit(60000) | Should -BeTrue
        } finally {
            if (-not $proc.HasExited) { $proc.Kill() }
        }
        Get-Content $log -ErrorAction SilentlyContinue | Should -Not -Contain 'done'
        Get-BusyParent | Should -BeNullOrEmpty
        Test-Path (Join-Path $env:FORKD_DATA_DIR 'snapshots/busy') | Should -BeFalse
        Get-ChildItem (Join-Path $env:FORKD_DATA_DIR 'staging') -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Get-ChildItem ([IO.Path]::GetTempPath()) -Filter "$parentPattern*" | Should -BeNullOrEmpty
    }

    It 'Ctrl+C during a fork stops the children it already started' {
        $registry = Join-Path $env:FORKD_DATA_DIR 'children'
        $before = @(Get-ChildItem $registry -Filter *.json).Count
        $proc = Start-Process env -PassThru -RedirectStandardOutput (Join-Path $TestDrive 'fork.log') -ArgumentList @('--default-signal=INT', $pwsh, '-NoProfile', '-NonInteractive',
            '-Command', "Import-Module '$env:FORKD_MODULE_PATH'; Invoke-ForkdFork -Tag eng -Count 20 | Out-Null; 'done'")
        try {
            $deadline = [DateTime]::UtcNow.AddSeconds(120)
            while (@(Get-ChildItem $registry -Filter *.json).Count -le $before -and -not $proc.HasExited -and [DateTime]::UtcNow -lt $deadline) {
                Start-Sleep -Milliseconds 20
            }
            $proc.HasExited | Should -BeFalse -Because 'the fork must still be running when Ctrl+C arrives'
            if (Test-SigIntIgnored $proc.Id) {
                $proc.Kill(); $proc.WaitForExit()
                Get-ForkdChild | Where-Object Id -notin $children.Id | Stop-ForkdChild -Confirm:$false
                Set-ItResult -Skipped -Because 'SIGINT is ignored in this process tree, so Ctrl+C cannot be delivered'
                return
            }
            & kill -INT $proc.Id
            $proc.WaitForExit(60000) | Should -BeTrue
        } finally {
            if (-not $proc.HasExited) { $proc.Kill() }
        }
        Get-Content (Join-Path $TestDrive 'fork.log') -ErrorAction SilentlyContinue | Should -Not -Contain 'done'
        @(Get-ChildItem $registry -Filter *.json).Count | Should -Be $before
        Get-ChildItem ([IO.Path]::GetTempPath()) -Filter "forkd-child-eng-$($proc.Id)-*" | Should -BeNullOrEmpty
        Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | Where-Object {
            try { [IO.File]::ReadAllText("$($_.FullName)/cmdline").Contains("forkd-child-eng-$($proc.Id)-") } catch { $false }
        } | Should -BeNullOrEmpty
    }

    It 'applies a cgroup memory limit and a raised oom_score_adj to a child' {
        if ((& id -u) -ne '0') { Set-ItResult -Skipped -Because 'cgroup memory limits need root'; return }
        $extra = Invoke-ForkdFork -Tag eng -Count 1 -MemoryLimitMiB 512
        try {
            (Get-Content "/proc/$($extra.ProcessId)/oom_score_adj" -Raw).Trim() | Should -Be '800'
            $extra.CgroupPath | Should -Not -BeNullOrEmpty
            (Get-Content "/proc/$($extra.ProcessId)/cgroup" -Raw) | Should -Match ([regex]::Escape("/forkd/$($extra.Id)"))
            $limitFile = if (Test-Path (Join-Path $extra.CgroupPath 'memory.max')) { 'memory.max' } else { 'memory.limit_in_bytes' }
            [long](Get-Content (Join-Path $extra.CgroupPath $limitFile) -Raw).Trim() | Should -Be (512MB)
        } finally {
            $extra | Stop-ForkdChild -Confirm:$false
        }
        Test-Path $extra.CgroupPath | Should -BeFalse
        Test-Path $extra.WorkDirectory | Should -BeFalse
    }

    It 'shows a child whose VMM died as Exited, and eval on it fails for that child only' {
        $victim = $children[3]
        Stop-Process -Id $victim.ProcessId -Force
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while ((Get-ForkdChild -Id $victim.Id).State -ne 'Exited' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
        (Get-ForkdChild -Id $victim.Id).State | Should -Be 'Exited'

        $results = @($children | Invoke-ForkdEval -Code '6 * 7' -ErrorVariable evalErrors -ErrorAction SilentlyContinue)
        $results.Count | Should -Be 3
        $results.Value | Should -Be @(42, 42, 42)
        $evalErrors.Count | Should -Be 1
        $evalErrors[0].FullyQualifiedErrorId | Should -BeLike 'ChildExited,*'
        $evalErrors[0].TargetObject | Should -Be $victim.Id
    }

    It 'runs exec in parallel and reports stdout and exit codes' {
        $live = $children[0..2]
        $r = @($live | Invoke-ForkdExec -NoGuestError -Command 'python3', '-c', 'import sys; print(6 * 7); sys.exit(3)')
        $r.Count | Should -Be 3
        $r.Stdout.Trim() | Should -Be @('42', '42', '42')
        $r.ExitCode | Should -Be @(3, 3, 3)
        @($live | Test-ForkdAgent).Responding | Should -Be @($true, $true, $true)
    }

    It 'Stop-ForkdChild -WhatIf changes nothing' {
        Get-ForkdChild | Stop-ForkdChild -WhatIf
        @(Get-ForkdChild).Count | Should -Be 4
        foreach ($c in $children[0..2]) {
            (Get-ForkdChild -Id $c.Id).State | Should -Be 'Running'
            Test-Path $c.WorkDirectory | Should -BeTrue
        }
    }

    It 'Stop-ForkdChild leaves no process, socket, work dir or registry entry behind' {
        Get-ForkdChild | Stop-ForkdChild -Confirm:$false
        @(Get-ForkdChild).Count | Should -Be 0
        foreach ($c in $children) {
            [Forkd.Core.Host.ProcessControl]::IsAlive($c.ProcessId) | Should -BeFalse
            Test-Path $c.WorkDirectory | Should -BeFalse
            Test-Path $c.Agent.Address | Should -BeFalse
        }
        Get-ChildItem (Join-Path $env:FORKD_DATA_DIR 'children') | Should -BeNullOrEmpty
        # No stray QEMU of this data dir: every one maps a memory file under it.
        Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | ForEach-Object {
            try { [IO.File]::ReadAllText("$($_.FullName)/cmdline").Replace([char]0, ' ') } catch { '' }
        } | Where-Object { $_ -like "*$env:FORKD_DATA_DIR*" } | Should -BeNullOrEmpty
        Remove-ForkdSnapshot -Tag eng -Confirm:$false
        Get-ForkdSnapshot | Should -BeNullOrEmpty
    }
}
