# Test-ForkdHost over the built module, checked against what this host really has (read here independently).
Describe 'Test-ForkdHost' -Tag Host {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedFc = $env:FORKD_FIRECRACKER
        $script:savedPath = $env:PATH
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $env:FORKD_FIRECRACKER = $null
        # PATH without any firecracker, so the "absent" case is what this test controls.
        $env:PATH = ($env:PATH -split ':' | Where-Object { -not (Test-Path (Join-Path $_ 'firecracker')) }) -join ':'
        $script:all = Test-ForkdHost -Name Qemu, Firecracker, Cgroups, NetworkNamespaces, VhostVsock, Ksm, HugePages, Memory, Disk
    }
    AfterAll {
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_FIRECRACKER = $script:savedFc
        $env:PATH = $script:savedPath
    }

    It 'returns one typed result per check, each with a status, what it saw, and a fix when not passing' {
        $script:all.Name | Should -Be @('Qemu', 'Firecracker', 'Cgroups', 'NetworkNamespaces', 'VhostVsock', 'Ksm', 'HugePages', 'Memory', 'Disk')
        foreach ($r in $script:all) {
            $r | Should -BeOfType ([Forkd.Core.Host.HostCheckResult])
            $r.Status | Should -BeIn @('Pass', 'Warn', 'Fail')
            $r.Observed | Should -Not -BeNullOrEmpty
            if ($r.Status -ne 'Pass') { $r.Fix | Should -Not -BeNullOrEmpty -Because "$($r.Name) is $($r.Status)" }
        }
    }

    It 'reports the cgroup mode and memory controller this host has' {
        $r = $script:all | Where-Object Name -eq Cgroups
        if (Test-Path /sys/fs/cgroup/cgroup.controllers) {
            $expect = (Get-Content /sys/fs/cgroup/cgroup.controllers) -match '\bmemory\b'
            $r.Observed | Should -Match 'cgroup v2'
            $r.Status | Should -Be $(if ($expect) { 'Pass' } else { 'Fail' })
        } else {
            $r.Observed | Should -Match 'cgroup v1'
            if (Test-Path /sys/fs/cgroup/memory/memory.limit_in_bytes) {
                $r.Status | Should -Be Pass
                $r.Observed | Should -Match 'memory controller at /sys/fs/cgroup/memory'
            } else {
                $r.Status | Should -Be Fail
            }
        }
    }

    It 'reports the QEMU version qemu-system-x86_64 prints' {
        $r = $script:all | Where-Object Name -eq Qemu
        $line = & qemu-system-x86_64 --version | Select-Object -First 1
        $line -match '(\d+\.\d+\.\d+)' | Should -BeTrue
        $r.Observed | Should -Match ([regex]::Escape($Matches[1]))
        $r.Status | Should -Be Pass
    }

    It 'warns that Firecracker is absent, and finds one named by FORKD_FIRECRACKER' {
        ($script:all | Where-Object Name -eq Firecracker).Status | Should -Be Warn
        $fake = Join-Path $TestDrive 'firecracker'
        Set-Content $fake "#!/bin/sh`necho 'Firecracker v1.10.1'"
        chmod +x $fake
        $env:FORKD_FIRECRACKER = $fake
        try {
            $r = Test-ForkdHost -Name Firecracker
            $r.Status | Should -Be Pass
            $r.Observed | Should -Match 'Firecracker v1\.10\.1'
            $env:FORKD_FIRECRACKER = Join-Path $TestDrive 'missing-firecracker'
            (Test-ForkdHost -Name Firecracker).Status | Should -Be Fail
        } finally {
            $env:FORKD_FIRECRACKER = $null
        }
    }

    It 'reports available memory as /proc/meminfo has it' {
        $kb = [long]((Select-String -Path /proc/meminfo -Pattern '^MemAvailable:\s+(\d+)').Matches[0].Groups[1].Value)
        $r = $script:all | Where-Object Name -eq Memory
        $r.Observed -match '^(\d+) MiB available' | Should -BeTrue
        [long]$Matches[1] | Should -BeGreaterThan ($kb / 1024 * 0.8)
        [long]$Matches[1] | Should -BeLessThan ($kb / 1024 * 1.2)
    }

    It 'checks free disk space under the data dir' {
        ($script:all | Where-Object Name -eq Disk).Observed | Should -Match ([regex]::Escape($env:FORKD_DATA_DIR))
    }

    It 'reports KSM as the kernel has it' {
        $run = (Get-Content /sys/kernel/mm/ksm/run -ErrorAction SilentlyContinue)
        $r = $script:all | Where-Object Name -eq Ksm
        $r.Status | Should -Be $(if ($run -eq '1') { 'Pass' } else { 'Warn' })
    }

    It 'reports /dev/vhost-vsock as present or not' {
        ($script:all | Where-Object Name -eq VhostVsock).Status | Should -Be $(if (Test-Path /dev/vhost-vsock) { 'Pass' } else { 'Warn' })
    }

    It 'fails KVM with the PVM explanation where /dev/kvm is kvm_pvm, and caches the boot probe' {
        if (-not (Test-Path /sys/module/kvm_pvm)) {
            Set-ItResult -Skipped -Because 'this host is not a kvm_pvm host'
            return
        }
        # Any file will do as the kernel here: PVM fails to boot any stock kernel, and the probe must say why.
        $kernel = Join-Path $TestDrive 'vmlinux'
        Set-Content $kernel 'not a kernel'
        $r = Test-ForkdHost -Name Kvm -KernelPath $kernel
        $r.Status | Should -Be Fail
        $r.Observed | Should -Match 'kvm_pvm'
        $r.Fix | Should -Match 'TCG'
        # One verdict cache, in the cache dir Get-ForkdDataDirectory shows, keyed by the kernel's content: the
        # accelerator choice of New-ForkdSnapshot reads the same entry.
        $hash = (Get-FileHash -Algorithm SHA256 $kernel).Hash.ToLowerInvariant().Substring(0, 16)
        @(Get-ChildItem (Join-Path (Get-ForkdDataDirectory).CacheDirectory 'kvm-verdicts') -Filter "$hash-*.json") | Should -HaveCount 1
        (Test-ForkdHost -Name Kvm -KernelPath $kernel).Observed | Should -Match '\(cached\)'
    }

    It 'rejects an unknown check name with a parameter error' {
        { Test-ForkdHost -Name Nope -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Forkd.PowerShell.Commands.TestForkdHostCommand'
    }
}
