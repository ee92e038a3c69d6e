# -AsJob (issue 11.10): the long-running cmdlets return a job that Wait-Job, Receive-Job and Stop-Job handle like
# Hyper-V's; Stop-Job cancels like Ctrl+C and the engine cleans up. Real QEMU VMs, a real guest image build and a
# real HTTP server on 127.0.0.1; private data, temp and image-cache dirs.
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

    Context 'Build-ForkdImage -AsJob' {
        BeforeAll {
            # A private image cache: these builds and the stopped one touch nothing others use. The shared cache's
            # .debs keep the build offline.
            $script:sharedCache = $env:FORKD_CACHE_DIR
            $env:FORKD_CACHE_DIR = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'cache')).FullName
            Copy-Item -LiteralPath (Join-Path $sharedCache 'debs') -Destination (Join-Path $env:FORKD_CACHE_DIR 'debs') -Recurse
        }
        AfterAll { $env:FORKD_CACHE_DIR = $script:sharedCache }

        It 'builds in a job that completes with the GuestImage in the cache' {
            $job = Build-ForkdImage -Recipe minimal -AsJob
            $job.PSJobTypeName | Should -Be 'ForkdJob'
            $job | Wait-Job -Timeout 600 | Out-Null
            $job.State | Should -Be 'Completed'
            $image = $job | Receive-Job
            $image | Should -BeOfType ([Forkd.Core.Guest.GuestImage])
            Split-Path (Split-Path $image.Directory) | Should -Be $env:FORKD_CACHE_DIR
            Join-Path $image.Directory $image.InitramfsFileName | Should -Exist
            (Get-ForkdImage -Recipe minimal).ContentHash | Should -Be $image.ContentHash
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*') | Should -BeNullOrEmpty
            $script:built = $image
        }

        It 'Stop-Job of a rebuild leaves no work dir and no staging dir, and the cached image as it was' {
            $initramfs = Join-Path $built.Directory $built.InitramfsFileName
            $before = (Get-FileHash -LiteralPath $initramfs).Hash
            $job = Build-ForkdImage -Recipe minimal -Force -AsJob
            # Stop it while it works: its work dir exists.
            $deadline = [DateTime]::UtcNow.AddSeconds(120)
            while (-not (Get-ChildItem $env:TMPDIR -Filter 'forkd-*') -and $job.State -eq 'Running' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*').Count | Should -BeGreaterThan 0 -Because "the build should have started (job: $($job.State))"
            $job | Stop-Job
            $job.State | Should -Be 'Stopped'
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*') | Should -BeNullOrEmpty
            @(Get-ChildItem -Force (Join-Path $env:FORKD_CACHE_DIR 'images') | Where-Object Name -like '.*') | Should -BeNullOrEmpty
            (Get-FileHash -LiteralPath $initramfs).Hash | Should -Be $before
            (Get-ForkdImage -Recipe minimal).ContentHash | Should -Be $built.ContentHash
        }
    }

    Context 'Publish-ForkdPack -AsJob' {
        BeforeAll {
            $script:www = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'www')).FullName
            $portFile = Join-Path $TestDrive 'port'
            $script:server = Start-Process python3 -ArgumentList (Join-Path $PSScriptRoot 'hub_server.py'), $www, $portFile -PassThru `
                -RedirectStandardError (Join-Path $TestDrive 'server.err') -RedirectStandardOutput (Join-Path $TestDrive 'server.out')
            $deadline = [DateTime]::UtcNow.AddSeconds(20)
            while (-not (Test-Path $portFile) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            $script:base = "http://127.0.0.1:$(Get-Content $portFile)"
            # A snapshot laid out like a real one; 24 MiB of random memory makes a pack larger than loopback socket
            # buffers, so a server that reads nothing stalls the upload.
            $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR 'snapshots/pub')
            [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), [byte[]]::new(1000))
            $memory = [byte[]]::new(24MB); [Random]::new(7).NextBytes($memory)
            [IO.File]::WriteAllBytes((Join-Path $dir 'memory.bin'), $memory)
            Set-Content -LiteralPath (Join-Path $dir 'snapshot.json') -Value '{ "vmstate": "vmstate", "memory": "memory.bin", "volumes": [] }'
        }
        AfterAll { if ($script:server) { Stop-Process -Id $script:server.Id -Force -ErrorAction Ignore } }

        It 'publishes in a job that completes with the PublishResult, and the upload imports' {
            $job = Publish-ForkdPack -Tag pub -Uri "$base/upload/pub.tar.zst?sig=secret" -AsJob
            $job.PSJobTypeName | Should -Be 'ForkdJob'
            $job | Wait-Job -Timeout 120 | Out-Null
            $job.State | Should -Be 'Completed'
            $result = $job | Receive-Job
            $result | Should -BeOfType ([Forkd.Core.Hub.PublishResult])
            $result.StatusCode | Should -Be 200
            (Get-Item -LiteralPath (Join-Path $www 'pub.tar.zst.uploaded')).Length | Should -Be $result.BytesSent
            (Import-ForkdPack -Path (Join-Path $www 'pub.tar.zst.uploaded') -Tag pubback).IsComplete | Should -BeTrue
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*') | Should -BeNullOrEmpty
        }

        It 'Stop-Job of a stalled upload stops it at once and leaves no pack file' {
            $job = Publish-ForkdPack -Tag pub -Uri "$base/stall/stalled.tar.zst" -AsJob
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            while (-not (Test-Path (Join-Path $www 'stalled.tar.zst.started')) -and $job.State -eq 'Running' -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            Join-Path $www 'stalled.tar.zst.started' | Should -Exist -Because "the upload should have reached the server (job: $($job.State))"
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*').Count | Should -BeGreaterThan 0 -Because 'the pack being sent is a temp file'
            $clock = [Diagnostics.Stopwatch]::StartNew()
            $job | Stop-Job
            $clock.Elapsed.TotalSeconds | Should -BeLessThan 10
            $job.State | Should -Be 'Stopped'
            @(Get-ChildItem $env:TMPDIR -Filter 'forkd-*') | Should -BeNullOrEmpty
            Join-Path $www 'stalled.tar.zst.uploaded' | Should -Not -Exist
        }
    }
}
