# Big guests over the built module with real QEMU/TCG VMs: the nodejs recipe's root disk (built from
# Debian packages with mmdebstrap, cached in $env:FORKD_CACHE_DIR, <repo>/.cache by default), volumes,
# and the Node warm-up bridge. One parent is snapshotted with a read-only and a read-write volume;
# children are forked from it and checked. Budget: ~3 min on 2 cores once the root disk is cached
# (building it first takes ~2 min more).
Describe 'Root disks, volumes and the Node recipe' -Tag RootDisk {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment

        # Volumes: ext4 images made the way forkd's hint says, one with a file in it.
        $script:volDir = Join-Path $TestDrive 'volumes'
        New-Item -ItemType Directory -Path (Join-Path $volDir 'content') -Force | Out-Null
        Set-Content -Path (Join-Path $volDir 'content/hello.txt') -Value 'hello from the host' -NoNewline
        $script:roVolume = Join-Path $volDir 'data.ext4'
        $script:rwVolume = Join-Path $volDir 'scratch.ext4'
        & mkfs.ext4 -q -F -d (Join-Path $volDir 'content') $roVolume 16M | Out-Null
        & mkfs.ext4 -q -F $rwVolume 16M | Out-Null
        $script:roHash = (Get-FileHash $roVolume).Hash

        $script:snapshot = New-ForkdSnapshot -Tag nodebig -Recipe nodejs -Volume "$($roVolume):/data:ro", "$($rwVolume):/scratch" -Verbose 4>&1 |
            ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { Write-Host "  $($_.Message)" } else { $_ } }
        $script:rootDisk = Join-Path $snapshot.Path 'rootdisk.img'
        $script:rootHash = (Get-FileHash $rootDisk).Hash
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'records the read-only root disk and both volumes in the snapshot' {
        $snapshot.IsComplete | Should -BeTrue
        $snapshot.Recipe | Should -Be 'nodejs'
        $meta = Get-Content (Join-Path $snapshot.Path 'snapshot.json') -Raw | ConvertFrom-Json
        $root = $meta.backend_config.drives | Where-Object id -EQ 'root'
        $root.path | Should -Be 'rootdisk.img'
        $root.read_only | Should -BeTrue
        $meta.volumes.Count | Should -Be 2
        ($meta.volumes | Where-Object guest_path -EQ '/data').read_only | Should -BeTrue
        ($meta.volumes | Where-Object guest_path -EQ '/scratch').read_only | Should -BeFalse
        $meta.backend_config.append | Should -Match 'forkd\.mounts=vdb:/data,vdc:/scratch'
    }

    It 'refuses to fork two children that would both write the read-write volume' {
        { Invoke-ForkdFork -Tag nodebig -Count 2 -ErrorAction Stop } |
            Should -Throw -ErrorId 'VolumeSharedWritable,Forkd.PowerShell.Commands.InvokeForkdForkCommand'
        @(Get-ForkdChild -Tag nodebig).Count | Should -Be 0
    }

    It 'forks two children with -Force and a warning' {
        $script:children = @(Invoke-ForkdFork -Tag nodebig -Count 2 -Force -WarningVariable warnings -WarningAction SilentlyContinue)
        $children.Count | Should -Be 2
        ($warnings -join "`n") | Should -Match 'scratch.*forced'
        foreach ($c in $children) {
            (Get-Content "/proc/$($c.ProcessId)/cmdline" -Raw) -replace "`0", ' ' | Should -Match 'readonly=on'
        }
    }

    It 'runs the guest from the root disk under a RAM overlay' {
        $r = Invoke-ForkdExec -Id $children[0].Id -Command 'sh', '-c', 'grep " / " /proc/mounts; cat /etc/debian_version'
        $r.ExitCode | Should -Be 0
        $r.Stdout | Should -Match '^overlay / overlay .*upperdir=/forkd-rw/upper'
        $r.Stdout | Should -Match '(?m)^12\.'
    }

    It 'keeps a write in one child invisible to the other' {
        $a, $b = $children
        $w = Invoke-ForkdExec -Id $a.Id -Command 'sh', '-c', 'echo only-in-a > /etc/forkd-private && sync && cat /etc/forkd-private'
        $w.Stdout.Trim() | Should -Be 'only-in-a'
        $r = Invoke-ForkdExec -Id $b.Id -Command 'sh', '-c', 'test -e /etc/forkd-private && echo visible || echo absent'
        $r.Stdout.Trim() | Should -Be 'absent'
    }

    It 'mounts the read-only volume read-only in every child' {
        foreach ($c in $children) {
            (Invoke-ForkdExec -Id $c.Id -Command 'cat', '/data/hello.txt').Stdout | Should -Be 'hello from the host'
            $w = Invoke-ForkdExec -Id $c.Id -Command 'sh', '-c', 'echo x > /data/new.txt' -NoGuestError
            $w.ExitCode | Should -Not -Be 0
            $w.Stderr | Should -Match 'Read-only file system'
        }
    }

    It 'evaluates JavaScript in the warm Node process with native values, NaN and infinities' {
        $r = Invoke-ForkdEval -Id $children[0].Id -Code "await new Promise(r => setTimeout(r, 1)); return [41 + 1, NaN, Infinity, -Infinity, {v: process.version}]"
        $r.Error | Should -BeNullOrEmpty
        $v = $r.Value
        $v[0] | Should -Be 42
        [double]::IsNaN($v[1]) | Should -BeTrue
        $v[2] | Should -Be ([double]::PositiveInfinity)
        $v[3] | Should -Be ([double]::NegativeInfinity)
        $v[4]['v'] | Should -Match '^v\d+\.'
    }

    It 'surfaces the JavaScript stack of a failed eval' {
        $r = Invoke-ForkdEval -Id $children[1].Id -NoGuestError -Code "function inner() { throw new RangeError('out of range') }`ninner()"
        $r.Succeeded | Should -BeFalse
        $r.Error | Should -Be 'out of range'
        $r.Traceback | Should -Match 'RangeError: out of range'
        $r.Traceback | Should -Match 'inner'
    }

    It 'writes the read-write volume through to the host image' {
        $w = Invoke-ForkdExec -Id $children[0].Id -Command 'sh', '-c', 'echo from-child > /scratch/out.txt && sync'
        $w.ExitCode | Should -Be 0
        $children | Stop-ForkdChild -Confirm:$false
        (& debugfs -R 'cat /out.txt' $rwVolume 2>$null) | Should -Be 'from-child'
    }

    It 'never writes the root disk or the read-only volume' {
        @(Get-ForkdChild -Tag nodebig | Where-Object State -EQ 'Running').Count | Should -Be 0
        (Get-FileHash $rootDisk).Hash | Should -Be $rootHash
        (Get-FileHash $roVolume).Hash | Should -Be $roHash
        # The snapshot's root disk is the cached image itself (hard link), unchanged too.
        (Get-Item $rootDisk).IsReadOnly | Should -BeTrue
    }

    It 'runs a one-shot sandbox command and removes its snapshot and child' {
        $r = Start-ForkdSandbox -Recipe nodejs -Command 'node', '-e', 'console.log(6 * 7); process.exit(3)' -TimeoutSec 120
        $r | Should -BeOfType ([Forkd.Core.Engine.SandboxResult])
        $r.ExitCode | Should -Be 3
        $r.Stdout.Trim() | Should -Be '42'
        $r.Tag | Should -Match '^run-nodejs-[0-9a-f]{8}$'
        $r.Kept | Should -BeFalse
        Get-ForkdSnapshot -Tag $r.Tag -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        @(Get-ForkdChild | Where-Object Id -EQ $r.ChildId).Count | Should -Be 0
        @(Get-ChildItem ([IO.Path]::GetTempPath()) -Filter "forkd-*-$($r.Tag)-*" -ErrorAction SilentlyContinue).Count | Should -Be 0
    }
}
