# A crash of the host side must not orphan VMs (issue 10.6). A child pwsh runs Invoke-ForkdFork -Count 4
# and is killed with SIGKILL at several points (first VMM up, half of them up, the fork finished); then
# Get-ForkdChild must show every surviving VMM (Running with a record, or Orphaned without one), and
# `Get-ForkdChild | Stop-ForkdChild` must leave no process, no work dir and no record. Real QEMU (TCG)
# VMs from the minimal image in $env:FORKD_CACHE_DIR. Other agents run VMs on this machine: only
# processes whose command line names this test's private TMPDIR are counted.
Describe 'Orphaned children after the forking pwsh is killed' -Tag Orphans {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:saved = @{ Data = $env:FORKD_DATA_DIR; Tmp = $env:TMPDIR; Cache = $env:FORKD_CACHE_DIR }
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $env:TMPDIR = Join-Path $TestDrive 'tmp'
        New-Item -ItemType Directory -Path $env:TMPDIR, $env:FORKD_DATA_DIR | Out-Null
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        New-ForkdSnapshot -Tag orph -Recipe minimal -Accelerator Tcg | Out-Null

        # Our VMMs: processes whose command line names a child work dir in this test's temp dir.
        function Get-OurVmm {
            $childPrefix = Join-Path $env:TMPDIR 'forkd-child-'
            foreach ($dir in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$') {
                try {
                    $cmd = [IO.File]::ReadAllText("$($dir.FullName)/cmdline")
                    $exe = [IO.Path]::GetFileName(($cmd -split "`0")[0])
                    if ($cmd.Contains($childPrefix) -and $exe.StartsWith('qemu-system')) { [int]$dir.Name }
                } catch { }
            }
        }

        # A killed daemonized VMM stays a zombie until init reaps it: alive means running, not a zombie.
        function Test-Alive([int] $ProcessId) {
            $stat = Get-Content "/proc/$ProcessId/stat" -Raw -ErrorAction SilentlyContinue
            $stat -and $stat.Substring($stat.LastIndexOf(')') + 2, 1) -notin 'Z', 'X'
        }

        function Wait-Until([scriptblock] $Condition, [int] $Seconds, [string] $What) {
            $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
            while (-not (& $Condition)) {
                if ([DateTime]::UtcNow -gt $deadline) { throw "timed out waiting for $What" }
                Start-Sleep -Milliseconds 100
            }
        }

        # Starts `Invoke-ForkdFork -Count 4` in a fresh pwsh and SIGKILLs it once $KillWhen is true.
        function Invoke-KilledFork([scriptblock] $KillWhen, [string] $What) {
            $log = Join-Path $TestDrive "fork-$([guid]::NewGuid().ToString('n')).log"
            $proc = Start-Process $script:pwsh -PassThru -RedirectStandardOutput $log -ArgumentList @('-NoProfile', '-NonInteractive', '-Command',
                "Import-Module '$env:FORKD_MODULE_PATH'; `$c = Invoke-ForkdFork -Tag orph -Count 4; 'forked ' + @(`$c).Count; Start-Sleep 600")
            try {
                Wait-Until { & $KillWhen $log } 240 $What
            } finally {
                & /bin/kill -KILL $proc.Id
                $proc.WaitForExit()
            }
            # Launchers it left behind finish starting their QEMU (or fail) within a few seconds.
            $previous = -1
            for ($i = 0; $i -lt 60; $i++) {
                Start-Sleep -Seconds 2
                $now = @(Get-OurVmm).Count
                if ($now -eq $previous) { break }
                $previous = $now
            }
        }

        function Assert-AllListedAndStoppable {
            $vmms = @(Get-OurVmm)
            $listed = @(Get-ForkdChild)
            foreach ($vmmPid in $vmms) {
                $listed.ProcessId | Should -Contain $vmmPid -Because "VMM $vmmPid must be in Get-ForkdChild"
            }
            ($listed | Where-Object { $_.ProcessId -in $vmms }).State | Sort-Object -Unique | ForEach-Object { $_ | Should -BeIn @('Running', 'Orphaned') }
            $listed | Stop-ForkdChild -Confirm:$false
            Wait-Until { @(Get-OurVmm).Count -eq 0 } 30 'every VMM to end'
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-child-*' -Force) | Should -BeNullOrEmpty
            @(Get-ChildItem (Join-Path $env:FORKD_DATA_DIR 'children') -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
            @(Get-ForkdChild) | Should -BeNullOrEmpty
            $vmms.Count
        }
    }

    AfterAll {
        Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        Get-OurVmm | ForEach-Object { & /bin/kill -KILL $_ }
        $env:FORKD_DATA_DIR = $saved.Data
        $env:TMPDIR = $saved.Tmp
        $env:FORKD_CACHE_DIR = $saved.Cache
    }

    It 'lists and stops every VMM when killed as the first VMM appears' {
        Invoke-KilledFork { param($log) @(Get-OurVmm).Count -ge 1 } 'the first VMM'
        Assert-AllListedAndStoppable | Should -BeGreaterOrEqual 1
    }

    It 'lists and stops every VMM when killed with half of them up' {
        Invoke-KilledFork { param($log) @(Get-OurVmm).Count -ge 2 } 'two VMMs'
        Assert-AllListedAndStoppable | Should -BeGreaterOrEqual 2
    }

    It 'lists and stops every VMM when killed after the fork finished' {
        Invoke-KilledFork { param($log) (Test-Path $log) -and (Get-Content $log -Raw) -match 'forked 4' } 'the fork to finish'
        Assert-AllListedAndStoppable | Should -Be 4
    }

    It 'Remove-ForkdStaleWorkDir ends orphaned VMMs and keeps recorded ones' {
        Invoke-KilledFork { param($log) @(Get-OurVmm).Count -ge 1 } 'the first VMM'
        $orphans = @(Get-ForkdChild | Where-Object State -eq 'Orphaned')
        $recorded = @(Get-ForkdChild | Where-Object State -eq 'Running')
        $swept = @(Remove-ForkdStaleWorkDir -Confirm:$false)
        foreach ($o in $orphans) {
            Test-Alive $o.ProcessId | Should -BeFalse
            Test-Path $o.WorkDirectory | Should -BeFalse
            ($swept | Where-Object Path -eq $o.WorkDirectory).Action | Should -Be 'Removed'
        }
        foreach ($r in $recorded) { Test-Alive $r.ProcessId | Should -BeTrue }
        Assert-AllListedAndStoppable | Out-Null
    }

    It 'removes the work dir of a fork killed before its VMM started, and keeps one whose forker still runs' {
        # A dead creator pid: a process that has just exited.
        $dead = Start-Process sleep -ArgumentList 0 -PassThru; $dead.WaitForExit()
        $abandoned = New-Item -ItemType Directory (Join-Path $env:TMPDIR "forkd-child-orph-$($dead.Id)-dead0000")
        $inProgress = New-Item -ItemType Directory (Join-Path $env:TMPDIR "forkd-child-orph-$PID-live0000")
        try {
            Invoke-ForkdFork -Tag orph | Out-Null
            Get-ForkdChild | Stop-ForkdChild -Confirm:$false
            Test-Path $abandoned.FullName | Should -BeFalse
            Test-Path $inProgress.FullName | Should -BeTrue
        } finally {
            Remove-Item $inProgress.FullName -Force -ErrorAction SilentlyContinue
        }
    }

    It 'leaves no 0-byte record temp files behind' {
        @(Get-ChildItem (Join-Path $env:FORKD_DATA_DIR 'children') -Filter '*.tmp' -Force -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty
    }
}
