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

    It 'rebuilds with -Force to a byte-identical initramfs and kernel (reproducible from the same packages)' {
        $before = (Get-FileHash $image.InitramfsPath -Algorithm SHA256).Hash, (Get-FileHash $image.KernelPath -Algorithm SHA256).Hash
        $rebuilt = Build-ForkdImage minimal -Force -Confirm:$false
        $rebuilt.BuiltAt | Should -BeGreaterThan $image.BuiltAt
        $rebuilt.Directory | Should -Be $image.Directory
        (Get-FileHash $rebuilt.InitramfsPath -Algorithm SHA256).Hash | Should -Be $before[0]
        (Get-FileHash $rebuilt.KernelPath -Algorithm SHA256).Hash | Should -Be $before[1]
        $script:image = $rebuilt
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

# NumPy image: built and booted once (about a minute under TCG); proves numpy evals in a real VM.
Describe 'Build-ForkdImage python-numpy' -Tag Image, ImageNumpy {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedCache = $env:FORKD_CACHE_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $TestDrive 'cache' }
        $script:image = Build-ForkdImage -Recipe python-numpy -ErrorAction Stop
    }
    AfterAll {
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'reports the NumPy version apt-cache has and the minimal packages plus python3-numpy' {
        $deb = (& apt-cache show --no-all-versions python3-numpy | Select-String '^Version: (?:\d+:)?([^-+]+)').Matches[0].Groups[1].Value
        $image.NumpyVersion | Should -Be $deb
        $image.Packages.Name | Should -Contain 'python3-numpy'
        $image.Packages.Name | Should -Contain 'python3.11-minimal'
        $image.WarmupCode | Should -Match 'numpy'
    }

    It 'boots and evaluates numpy in the warm namespace after the recipe warm-up' {
        $evals = $image.WarmupCode, '_forkd_warm', 'float(np.linalg.inv(np.eye(2) * 4).sum())', 'np.arange(4) * 2'
        $boot = & (Join-Path $PSScriptRoot '../guest/Invoke-GuestBoot.ps1') -Image $image -Eval $evals -TimeoutSeconds 180
        $boot.Ping.NumpyVersion | Should -Be $image.NumpyVersion
        $boot.Eval[0].Error | Should -BeNullOrEmpty
        $boot.Eval[1].ResultJson | Should -Be '4.0'
        $boot.Eval[2].ResultJson | Should -Be '0.5'
        ($boot.Eval[3].ResultJson | ConvertFrom-Json) -join ',' | Should -Be '0,2,4,6' # JSON text; its spacing is not part of the value
        Write-Host "python-numpy image: cold boot to first ping $($boot.BootSeconds) s under TCG"
    }
}

# Remove-ForkdImage on a throw-away cache holding fake images (same layout as real ones), so the
# shared cache with the real builds is never touched.
Describe 'Remove-ForkdImage' -Tag Image {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedCache = $env:FORKD_CACHE_DIR
        $script:sharedCache = $env:FORKD_CACHE_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        function New-FakeImage([string] $Recipe, [string] $Hash) {
            $dir = Join-Path $env:FORKD_CACHE_DIR "images/$Recipe-$($Hash.Substring(0, 16))"
            New-Item -ItemType Directory -Force $dir | Out-Null
            Set-Content (Join-Path $dir vmlinux) 'k'
            Set-Content (Join-Path $dir initramfs.cpio) 'i'
            @{ Recipe = $Recipe; ContentHash = $Hash; Description = 'fake'; KernelFileName = 'vmlinux'; InitramfsFileName = 'initramfs.cpio'
               KernelCommandLine = 'rdinit=/init'; KernelVersion = 'k'; PythonVersion = '3'; Packages = @(); KernelBytes = 2; InitramfsBytes = 2
               BuiltAt = '2026-01-01T00:00:00+00:00' } | ConvertTo-Json | Set-Content (Join-Path $dir image.json)
            $dir
        }
    }
    BeforeEach {
        $env:FORKD_CACHE_DIR = Join-Path $TestDrive ("cache-" + [Guid]::NewGuid().ToString('N').Substring(0, 6))
        # The shared .deb cache keeps -Stale's package resolution offline and fast.
        if ($sharedCache -and (Test-Path "$sharedCache/debs")) {
            New-Item -ItemType Directory -Force $env:FORKD_CACHE_DIR | Out-Null
            Copy-Item "$sharedCache/debs/resolved.json" (New-Item -ItemType Directory -Force "$env:FORKD_CACHE_DIR/debs") -ErrorAction SilentlyContinue
        }
    }
    AfterAll {
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'removes exactly the piped image and leaves the others' {
        $a = New-FakeImage minimal ('a' * 64)
        $b = New-FakeImage minimal ('b' * 64)
        Get-ForkdImage minimal | Where-Object ContentHash -like 'a*' | Remove-ForkdImage -Confirm:$false
        Test-Path $a | Should -BeFalse
        Test-Path $b | Should -BeTrue
        (Get-ForkdImage).ContentHash | Should -Be ('b' * 64)
        Get-ChildItem -Force (Join-Path $env:FORKD_CACHE_DIR images) -Filter '.tmp-*' | Should -BeNullOrEmpty
    }

    It 'honours -WhatIf and reports a missing recipe image as ImageNotFound' {
        $a = New-FakeImage minimal ('c' * 64)
        Remove-ForkdImage minimal -WhatIf
        Test-Path $a | Should -BeTrue
        { Remove-ForkdImage never-built -ErrorAction Stop } | Should -Throw -ErrorId 'ImageNotFound,Forkd.PowerShell.Commands.RemoveForkdImageCommand'
    }

    It '-Stale removes images the recipes would not build today and images of unknown recipes' {
        $old = New-FakeImage minimal ('d' * 64)
        $gone = New-FakeImage retired-recipe ('e' * 64)
        Remove-ForkdImage -Stale -Confirm:$false -PassThru | ForEach-Object ContentHash | Sort-Object | Should -Be @(('d' * 64), ('e' * 64))
        Test-Path $old | Should -BeFalse
        Test-Path $gone | Should -BeFalse
    }
}
