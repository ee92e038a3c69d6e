#Requires -Version 7.4
# Replacing a snapshot is atomic: a pwsh killed with SIGKILL at any instant of Import-ForkdPack -Force or
# New-ForkdSnapshot -Force leaves the tag naming the old or the new snapshot, never none and never a mix, and
# the next store operation leaves nothing behind. The kill points are the engine's named failpoints
# (FORKD_FAILPOINTS), plus kills at timed instants across a whole import.

BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedDataDir = $env:FORKD_DATA_DIR
    $script:savedTmp = $env:TMPDIR
    # Work dirs of this test only (children inherit it): the sweep here must see nothing of other runs in /tmp.
    $env:TMPDIR = (New-Item -ItemType Directory -Path (Join-Path $TestDrive 'tmp')).FullName
    $script:pwsh = Join-Path $PSHOME 'pwsh'

    function New-MemorySnapshot([string] $DataDir, [string] $Tag, [int] $Seed) {
        $dir = Join-Path $DataDir "snapshots/$Tag"
        New-Item -ItemType Directory -Force -Path $dir | Out-Null
        & python3 -c "import random,sys; r=random.Random(int(sys.argv[2])); open(sys.argv[1],'wb').write(bytes(r.getrandbits(8) for _ in range(6*1024*1024)))" "$dir/memory.bin" $Seed
        & bash -c "head -c 14540 /dev/urandom > '$dir/vmstate'"
        Set-Content -Path "$dir/snapshot.json" -NoNewline -Value '{"vmstate": "vmstate", "memory": "memory.bin", "volumes": []}'
        $dir
    }

    function Get-Sha256([string] $Path) { (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash.ToLowerInvariant() }

    # Runs a script in a fresh pwsh with the module loaded, the given failpoints armed, under DataDir.
    function Invoke-Child([string] $DataDir, [string] $Failpoints, [string] $Command, [int] $KillAfterMs = 0) {
        $script = Join-Path $TestDrive ("child-" + [guid]::NewGuid().ToString('N') + '.ps1')
        Set-Content $script "`$ErrorActionPreference = 'Stop'; Import-Module '$env:FORKD_MODULE_PATH'; $Command"
        $psi = [System.Diagnostics.ProcessStartInfo]::new($pwsh)
        foreach ($a in '-NoProfile', '-NonInteractive', '-File', $script) { $psi.ArgumentList.Add($a) }
        $psi.Environment['FORKD_DATA_DIR'] = $DataDir
        $psi.Environment['FORKD_FAILPOINTS'] = $Failpoints
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $p = [System.Diagnostics.Process]::Start($psi)
        $err = $p.StandardError.ReadToEndAsync()
        $out = $p.StandardOutput.ReadToEndAsync()
        if ($KillAfterMs -gt 0) {
            if (-not $p.WaitForExit($KillAfterMs)) { & kill -9 $p.Id }
        }
        $p.WaitForExit()
        [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result + $err.Result }
    }

    function Get-Leftover([string] $DataDir) {
        @(Get-ChildItem -Force -Path (Join-Path $DataDir 'staging') -ErrorAction Ignore)
    }
}

AfterAll {
    $env:FORKD_DATA_DIR = $script:savedDataDir
    $env:TMPDIR = $script:savedTmp
}

Describe 'Import-ForkdPack -Force killed at any instant' -Tag Hub, Crash {
    BeforeAll {
        $script:data = Join-Path $TestDrive 'data'
        $work = Join-Path $TestDrive 'packs'
        New-MemorySnapshot $work 'old' 1 | Out-Null
        New-MemorySnapshot $work 'new' 2 | Out-Null
        $env:FORKD_DATA_DIR = $work
        $script:oldPack = Join-Path $TestDrive 'old.tar.zst'
        $script:newPack = Join-Path $TestDrive 'new.tar.zst'
        Export-ForkdPack -Tag old -Path $oldPack | Out-Null
        Export-ForkdPack -Tag new -Path $newPack | Out-Null
        $script:oldHash = Get-Sha256 "$work/snapshots/old/memory.bin"
        $script:newHash = Get-Sha256 "$work/snapshots/new/memory.bin"
        $env:FORKD_DATA_DIR = $data
    }

    BeforeEach {
        $env:FORKD_DATA_DIR = $data
        Import-ForkdPack -Path $oldPack -Tag swap -Force -Confirm:$false | Out-Null
        (Get-Sha256 (Join-Path $data 'snapshots/swap/memory.bin')) | Should -Be $oldHash
    }

    It 'killed at <Point>: the tag names the <Expect> snapshot, and the next store operation leaves nothing behind' -ForEach @(
        @{ Point = 'pack.before-install'; Expect = 'old' }
        @{ Point = 'store.install.before-rename'; Expect = 'old' }
        @{ Point = 'store.install.after-exchange'; Expect = 'new' }
    ) {
        $r = Invoke-Child $data $Point "Import-ForkdPack -Path '$newPack' -Tag swap -Force -Confirm:`$false"
        $r.ExitCode | Should -Be 137 -Because "the child must die at the failpoint (SIGKILL): $($r.Output)"
        $snap = Get-ForkdSnapshot -Tag swap
        $snap.IsComplete | Should -BeTrue
        (Get-Sha256 (Join-Path $snap.Path 'memory.bin')) | Should -Be (Get-Variable "$($Expect)Hash" -ValueOnly)
        Get-Leftover $data | Should -BeNullOrEmpty -Because 'Get-ForkdSnapshot rolls back or finishes what the crash left'
        Remove-ForkdStaleWorkDir -Confirm:$false | Where-Object Action -eq 'Removed' | Should -BeNullOrEmpty
    }

    It 'killed at timed instants across a whole import: always the old or the new snapshot, never none' {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $full = Invoke-Child $data '' "Import-ForkdPack -Path '$newPack' -Tag swap -Force -Confirm:`$false"
        $full.ExitCode | Should -Be 0 -Because $full.Output
        $total = [int]$clock.ElapsedMilliseconds
        $seen = @{}
        foreach ($i in 1..12) {
            Import-ForkdPack -Path $oldPack -Tag swap -Force -Confirm:$false | Out-Null
            $after = [int](200 + ($total - 200) * $i / 12)
            Invoke-Child $data '' "Import-ForkdPack -Path '$newPack' -Tag swap -Force -Confirm:`$false" -KillAfterMs $after | Out-Null
            $snap = Get-ForkdSnapshot -Tag swap
            $hash = Get-Sha256 (Join-Path $snap.Path 'memory.bin')
            $hash | Should -BeIn @($oldHash, $newHash) -Because "kill after $after ms"
            $seen[$hash] = $true
            Get-Leftover $data | Should -BeNullOrEmpty -Because "kill after $after ms"
        }
        Write-Host "  timed kills over a $total ms import: saw $(@($seen.Keys).Count) distinct outcome(s)"
    }
}

Describe 'New-ForkdSnapshot -Force killed at any instant' -Tag Engine, Crash {
    BeforeAll {
        $script:data = Join-Path $TestDrive 'vmdata'
        $env:FORKD_DATA_DIR = $data
        New-ForkdSnapshot -Tag again -Recipe minimal -WarmupCode 'generation = 1' -Confirm:$false | Out-Null
        $script:firstCreated = (Get-ForkdSnapshot -Tag again).CreatedAt
    }

    It 'killed at <Point>: the tag names the <Expect> snapshot and nothing is left behind' -ForEach @(
        @{ Point = 'snapshot.before-install'; Expect = 'old' }
        @{ Point = 'store.install.after-exchange'; Expect = 'new' }
    ) {
        $before = (Get-ForkdSnapshot -Tag again).CreatedAt
        $r = Invoke-Child $data $Point "New-ForkdSnapshot -Tag again -Recipe minimal -WarmupCode 'generation = 2' -Force -Confirm:`$false"
        $r.ExitCode | Should -Be 137 -Because "the child must die at the failpoint (SIGKILL): $($r.Output)"
        $snap = Get-ForkdSnapshot -Tag again
        $snap.IsComplete | Should -BeTrue
        if ($Expect -eq 'old') { $snap.CreatedAt | Should -Be $before } else { $snap.CreatedAt | Should -BeGreaterThan $before }
        Get-Leftover $data | Should -BeNullOrEmpty
        # The parent VM was killed before the install step: no QEMU of this data dir remains.
        @(Get-Process qemu-system-x86_64 -ErrorAction Ignore | Where-Object { (Get-Content "/proc/$($_.Id)/cmdline" -Raw -ErrorAction Ignore) -match 'forkd-parent-again-' -and (Get-Content "/proc/$($_.Id)/cmdline" -Raw -ErrorAction Ignore) -match [regex]::Escape($data) }) |
            Should -BeNullOrEmpty
    }

    It 'a child of the surviving snapshot forks and answers' {
        $child = Invoke-ForkdFork -Tag again -Confirm:$false
        try { (Invoke-ForkdEval -Id $child.Id -Code 'generation').Value | Should -Be 2 }
        finally { $child | Stop-ForkdChild -Confirm:$false }
    }
}
