BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:saved = @{ Data = $env:FORKD_DATA_DIR; Tmp = $env:TMPDIR }
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
    $env:TMPDIR = Join-Path $TestDrive 'tmp'
    New-Item -ItemType Directory -Path $env:TMPDIR, $env:FORKD_DATA_DIR | Out-Null
}

AfterAll {
    $env:FORKD_DATA_DIR = $saved.Data
    $env:TMPDIR = $saved.Tmp
}

Describe 'Remove-ForkdStaleWorkDir' -Tag Store {
    BeforeEach {
        Get-ChildItem $env:TMPDIR -Force | Remove-Item -Recurse -Force
        $script:dead = New-Item -ItemType Directory -Path (Join-Path $env:TMPDIR 'forkd-fork-py-4194305-deadbeef')
        Set-Content (Join-Path $dead 'child-1.console') 'log'
        $script:live = New-Item -ItemType Directory -Path (Join-Path $env:TMPDIR 'forkd-parent-py-222-cafef00d')
        $script:log = Join-Path $live 'fc.console'
        Set-Content $log ''
        # A real process holding a file inside the live dir open, as a VMM holds its console log.
        $psi = [System.Diagnostics.ProcessStartInfo]::new('bash')
        '-c', 'exec 3>>"$1"; exec sleep 120', 'holder', $log | ForEach-Object { $psi.ArgumentList.Add($_) }
        $script:holder = [System.Diagnostics.Process]::Start($psi)
        $deadline = [DateTime]::UtcNow.AddSeconds(10)
        while (-not ((Get-ChildItem "/proc/$($holder.Id)/fd" -ErrorAction SilentlyContinue).LinkTarget -contains $log)) {
            if ([DateTime]::UtcNow -gt $deadline) { throw 'holder never opened the file' }
            Start-Sleep -Milliseconds 50
        }
        $script:outside = New-Item -ItemType Directory -Force -Path (Join-Path $TestDrive 'outside')
        Set-Content (Join-Path $outside 'precious.txt') 'keep me'
    }

    AfterEach {
        $holder.Kill()
        $holder.WaitForExit()
    }

    It 'changes nothing with -WhatIf and reports what it would do' {
        $r = Remove-ForkdStaleWorkDir -WhatIf
        Test-Path $dead | Should -BeTrue
        Test-Path $live | Should -BeTrue
        ($r | Where-Object Path -eq $dead.FullName).Action | Should -Be 'WouldRemove'
        ($r | Where-Object Path -eq $live.FullName).Action | Should -Be 'KeptLive'
    }

    It 'removes the dead dir and keeps the live one with -Confirm:$false' {
        $r = Remove-ForkdStaleWorkDir -Confirm:$false
        $r | Should -BeOfType ([Forkd.Core.Store.StaleWorkDir])
        Test-Path $dead | Should -BeFalse
        Test-Path $live | Should -BeTrue
        $liveResult = $r | Where-Object Path -eq $live.FullName
        $liveResult.IsLive | Should -BeTrue
        $liveResult.HolderProcessIds | Should -Contain $holder.Id
        ($r | Where-Object Path -eq $dead.FullName).Action | Should -Be 'Removed'
    }

    It 'never follows a planted symlink outside the temp dir' {
        New-Item -ItemType SymbolicLink -Path (Join-Path $dead 'escape') -Target $outside | Out-Null
        New-Item -ItemType SymbolicLink -Path (Join-Path $env:TMPDIR 'forkd-pull-evil') -Target $outside | Out-Null
        Remove-ForkdStaleWorkDir -Confirm:$false | Out-Null
        Get-Content (Join-Path $outside 'precious.txt') | Should -Be 'keep me'
        Test-Path (Join-Path $env:TMPDIR 'forkd-pull-evil') | Should -BeFalse
    }

    It 'ignores names outside its prefix table' {
        $other = New-Item -ItemType Directory -Path (Join-Path $env:TMPDIR 'forkd-daemon-x'), (Join-Path $env:TMPDIR 'unrelated')
        $r = Remove-ForkdStaleWorkDir -Confirm:$false
        $r.Path | Should -Not -Contain $other[0].FullName
        $other | ForEach-Object { Test-Path $_ | Should -BeTrue }
    }

    It 'filters by -Kind' {
        $r = Remove-ForkdStaleWorkDir -Kind Parent -WhatIf
        $r.Kind | Should -Be 'Parent'
        Test-Path $dead | Should -BeTrue
    }

    It 'sweeps an interrupted removal in the staging dir' {
        $staged = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR 'staging/forkd-remove-py-4194305-0')
        $r = Remove-ForkdStaleWorkDir -Kind Remove -Confirm:$false
        $r.Action | Should -Be 'Removed'
        Test-Path $staged | Should -BeFalse
    }

    It 'leaves another user''s work dir alone and says why' {
        $theirs = New-Item -ItemType Directory -Path (Join-Path $env:TMPDIR 'forkd-fork-theirs-333-0badf00d')
        Set-Content (Join-Path $theirs 'their.log') 'x'
        & chown -R nobody $theirs.FullName
        $r = Remove-ForkdStaleWorkDir -Confirm:$false | Where-Object Path -eq $theirs.FullName
        $r.Action | Should -Be 'Refused'
        $r.Reason | Should -Match 'uid'
        Test-Path (Join-Path $theirs 'their.log') | Should -BeTrue
    }

    It 'restores the only complete copy of a snapshot instead of deleting it' {
        $old = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR 'staging/forkd-remove-keep-4194305-0c0ffee0/snapshot')
        Set-Content (Join-Path $old 'snapshot.json') '{ "vmstate": "vmstate", "memory": "memory.bin", "backend": "qemu", "memory_mib": 256 }'
        Set-Content (Join-Path $old 'vmstate') 'state'
        Set-Content (Join-Path $old 'memory.bin') 'memory'
        $r = Remove-ForkdStaleWorkDir -Kind Remove -Confirm:$false
        $r.Action | Should -Be 'Restored'
        (Get-ForkdSnapshot -Tag keep).IsComplete | Should -BeTrue
    }
}
