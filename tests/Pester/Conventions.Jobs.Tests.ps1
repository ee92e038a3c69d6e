# -AsJob (issue 11.10): the long-running cmdlets return a job that Wait-Job, Receive-Job and Stop-Job handle like
# Hyper-V's; Stop-Job cancels like Ctrl+C and the engine cleans up. Real QEMU VMs; private data and temp dirs.
Describe '-AsJob' -Tag Conventions, ConventionsVm {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:saved = $env:FORKD_DATA_DIR, $env:TMPDIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $env:TMPDIR = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'tmp')).FullName
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        # QEMU processes of this test only: their command lines name our data or temp dir.
        function Get-OurVmm {
            Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -match '^\d+$' | ForEach-Object {
                $cmd = (Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction SilentlyContinue) -replace "`0", ' '
                if ($cmd -like 'qemu-system*' -and ($cmd.Contains($env:FORKD_DATA_DIR) -or $cmd.Contains($env:TMPDIR))) { [int]$_.Name }
            }
        }
    }
    AfterAll {
        Get-Job | Where-Object PSJobTypeName -eq 'ForkdJob' | Remove-Job -Force
        Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        $env:FORKD_DATA_DIR, $env:TMPDIR = $saved
    }

    It 'New-ForkdSnapshot -AsJob returns a job at once that completes with the snapshot' {
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $job = New-ForkdSnapshot -Tag jobs -Recipe minimal -WarmupCode 'n = 7' -AsJob
        $clock.Elapsed.TotalSeconds | Should -BeLessThan 5
        $job.GetType().Name | Should -Be 'ForkdJob'
        $job.PSJobTypeName | Should -Be 'ForkdJob'
        (Get-Job -Id $job.Id).Id | Should -Be $job.Id
        $job | Wait-Job -Timeout 300 | Out-Null
        $job.State | Should -Be 'Completed'
        $snapshot = $job | Receive-Job
        $snapshot | Should -BeOfType ([Forkd.Core.Store.SnapshotInfo])
        $snapshot.Tag | Should -Be 'jobs'
        $job.HasMoreData | Should -BeFalse
    }

    It 'Invoke-ForkdFork -AsJob takes piped tags into one job; a bad tag is an error in the job, not a failure' {
        $job = 'nope', 'jobs' | Invoke-ForkdFork -Count 2 -AsJob
        $job | Wait-Job -Timeout 120 | Out-Null
        $job.State | Should -Be 'Completed'
        $children = @($job | Receive-Job -ErrorVariable failures -ErrorAction SilentlyContinue)
        $children.Count | Should -Be 2
        $children.Tag | Should -Be @('jobs', 'jobs')
        $failures.Count | Should -Be 1
        $failures[0].TargetObject | Should -Be 'nope'
        ($children | Invoke-ForkdEval -Code 'n * 6' -Confirm:$false).Value | Should -Be @(42, 42)
        $children | Stop-ForkdChild -Confirm:$false
    }

    It 'Export-ForkdPack and Import-ForkdPack -AsJob complete and report' {
        $export = Export-ForkdPack -Tag jobs -Path (Join-Path $TestDrive 'jobs.tar.zst') -AsJob | Wait-Job -Timeout 120
        $export.State | Should -Be 'Completed'
        $pack = $export | Receive-Job
        $pack.Path | Should -Exist
        $import = Import-ForkdPack -Path $pack.Path -Tag jobs2 -AsJob | Wait-Job -Timeout 120
        $import.State | Should -Be 'Completed'
        ($import | Receive-Job).Tag | Should -Be 'jobs2'
    }

    It 'Stop-Job cancels a snapshot being made: the parent VM is gone, no snapshot and no work dir stay' {
        $job = New-ForkdSnapshot -Tag jobstop -Recipe minimal -WarmupCode 'import time; time.sleep(120)' -AsJob
        # Wait until the parent VM runs, so the stop has something to clean up.
        $deadline = [DateTime]::UtcNow.AddSeconds(120)
        while (-not (Get-OurVmm) -and [DateTime]::UtcNow -lt $deadline -and $job.State -eq 'Running') { Start-Sleep -Milliseconds 200 }
        @(Get-OurVmm).Count | Should -BeGreaterThan 0 -Because "the parent VM should have started (job: $($job.State))"
        $job | Stop-Job
        $job.State | Should -Be 'Stopped'
        Start-Sleep -Milliseconds 500
        @(Get-OurVmm) | Should -BeNullOrEmpty
        Get-ForkdSnapshot -Tag jobstop -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*') | Should -BeNullOrEmpty
        @(Remove-ForkdStaleWorkDir -WhatIf) | Should -BeNullOrEmpty
    }
}
