# Build-ForkdImage / Get-ForkdImage over the built module, and one real QEMU/TCG boot of the image.
# The image cache is $env:FORKD_CACHE_DIR (build.ps1 points it at <repo>/.cache), so a build is
# reused across runs and by other test files; the first run downloads and builds (~30 s).
Describe 'Build-ForkdImage' -Tag Image {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedCache = $env:FORKD_CACHE_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $TestDrive 'cache' }
        $script:image = Build-ForkdImage -Recipe minimal -ErrorAction Stop
        $script:bootHelper = Join-Path $PSScriptRoot '../guest/Invoke-GuestBoot.ps1'
    }
    AfterAll {
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'returns a GuestImage in the cache named by recipe and content hash' {
        $image | Should -BeOfType ([Forkd.Core.Guest.GuestImage])
        $image.Recipe | Should -Be minimal
        $image.ContentHash | Should -Match '^[0-9a-f]{64}$'
        Split-Path $image.Directory -Leaf | Should -Be "minimal-$($image.ContentHash.Substring(0, 16))"
        Split-Path (Split-Path $image.Directory) -Parent | Should -Be $env:FORKD_CACHE_DIR
        $image.AgentPortName | Should -Be 'forkd.agent'
        $image.KernelCommandLine | Should -Match 'rdinit=/init'
        $image.NumpyVersion | Should -BeNullOrEmpty
    }

    It 'holds an ELF vmlinux and a newc initramfs whose sizes the object reports' {
        $kernel = Get-Item $image.KernelPath
        $initrd = Get-Item $image.InitramfsPath
        $kernel.Length | Should -Be $image.KernelBytes
        $initrd.Length | Should -Be $image.InitramfsBytes
        $head = [IO.File]::ReadAllBytes($image.KernelPath)[0..3]
        $head | Should -Be @(0x7F, 0x45, 0x4C, 0x46)
        $listing = & cpio -t --quiet -F $image.InitramfsPath
        $listing | Should -Contain 'init'
        $listing | Should -Contain 'forkd-agent.py'
        $listing | Should -Contain 'dev/console'
        $listing | Should -Contain 'lib/modules/virtio_console.ko'
        $listing | Should -Contain 'usr/bin/python3.11'
        $listing | Should -Not -Contain 'usr/lib/python3.11/test/__init__.py'
    }

    It 'records the exact Debian packages, kernel and Python versions that apt-cache reports' {
        $py = $image.Packages | Where-Object Name -eq 'python3.11-minimal'
        $py.Version | Should -Be ((& apt-cache show --no-all-versions python3.11-minimal | Select-String '^Version: (.+)$').Matches[0].Groups[1].Value)
        $image.PythonVersion | Should -Be (($py.Version -split '-')[0])
        $kernelPackage = $image.Packages | Where-Object Name -like 'linux-image-*-cloud-amd64'
        $kernelPackage.Name | Should -Be "linux-image-$($image.KernelVersion)"
    }

    It 'returns the cached image on a second call without rebuilding' {
        $again = Build-ForkdImage minimal
        $again.Directory | Should -Be $image.Directory
        $again.BuiltAt | Should -Be $image.BuiltAt
        (Get-ForkdImage -Recipe minimal).ContentHash | Should -Contain $image.ContentHash
    }

    It 'with -Force -WhatIf rebuilds nothing' {
        Build-ForkdImage minimal -Force -WhatIf | Should -BeNullOrEmpty
        (Get-ForkdImage minimal | Where-Object ContentHash -eq $image.ContentHash).BuiltAt | Should -Be $image.BuiltAt
    }

    It 'refuses an unknown recipe with RecipeNotFound and leaves no work dir' {
        { Build-ForkdImage -Recipe no-such-recipe -ErrorAction Stop } | Should -Throw -ErrorId 'RecipeNotFound,Forkd.PowerShell.Commands.BuildForkdImageCommand'
        Get-ChildItem ([IO.Path]::GetTempPath()) -Filter "forkd-build-*-$PID-*" | Should -BeNullOrEmpty
    }

    It 'Get-ForkdImage reports a missing recipe image as ImageNotFound' {
        { Get-ForkdImage -Recipe never-built -ErrorAction Stop } | Should -Throw -ErrorId 'ImageNotFound,Forkd.PowerShell.Commands.GetForkdImageCommand'
    }

    It 'boots in QEMU/TCG and its agent answers ping, exec and eval over virtio-serial' {
        $boot = & $bootHelper -Image $image -Eval 'import platform', 'platform.release()', '2**10' -Exec 'sh', '-c', 'cat /proc/1/comm; echo err >&2; exit 7'
        $boot.Exec.Stdout | Should -Be "init`n" -Because "forkd-init is PID 1 and stays (it supervises the agent)"
        $boot.Exec.Stderr | Should -Be "err`n"
        $boot.Exec.ExitCode | Should -Be 7
        $boot.Ping.AgentLang | Should -Be python
        $boot.Ping.PythonVersion | Should -Be $image.PythonVersion
        $boot.Eval[1].Result | Should -Be "'$($image.KernelVersion)'"
        $boot.Eval[2].ResultJson | Should -Be '1024'
        $boot.Console | Should -Match 'forkd-init: launching agent'
        Write-Host "minimal image: cold boot to first ping $($boot.BootSeconds) s under TCG"
    }
}
