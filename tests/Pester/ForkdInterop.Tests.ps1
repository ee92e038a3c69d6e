# forkd 0.1.3 artifacts and CLI rules through the built module (issue 12, points 2 and 4).
BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:saved = @{ Data = $env:FORKD_DATA_DIR; Fc = $env:FORKD_FIRECRACKER }
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'

    # A snapshot dir as forkd writes it: snapshot.json with only vmstate/memory/volumes and another host's paths.
    function New-ForkdMadeSnapshot([string] $Tag, [string] $RootfsPath) {
        $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR "snapshots/$Tag")
        $state = [IO.MemoryStream]::new()
        $w = [IO.BinaryWriter]::new($state)
        $w.Write([uint64]0x0710198486640000); $w.Write([byte[]]::new(512))
        foreach ($s in 'rootfs') { $b = [Text.Encoding]::UTF8.GetBytes($s); $w.Write([uint64]$b.Length); $w.Write($b) }
        $w.Write([byte]0); $w.Write([uint32]0); $w.Write([byte]1)   # partuuid None, cache_type, root_device
        $b = [Text.Encoding]::UTF8.GetBytes($RootfsPath); $w.Write([uint64]$b.Length); $w.Write($b)
        $w.Write([byte[]]::new(256)); $w.Flush()
        [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), $state.ToArray())
        $fs = [IO.File]::Create((Join-Path $dir 'memory.bin')); $fs.SetLength(64MB); $fs.Dispose()
        Set-Content -NoNewline -Path (Join-Path $dir 'snapshot.json') -Value (@{
                vmstate = "/home/u/.local/share/forkd/snapshots/$Tag/vmstate"
                memory  = "/home/u/.local/share/forkd/snapshots/$Tag/memory.bin"
                volumes = @()
            } | ConvertTo-Json)
        $dir.FullName
    }
}

AfterAll {
    $env:FORKD_DATA_DIR = $saved.Data
    $env:FORKD_FIRECRACKER = $saved.Fc
}

Describe 'forkd-made snapshots' -Tag ForkdInterop {
    It 'are listed as Firecracker snapshots by forkd' {
        New-ForkdMadeSnapshot -Tag fromforkd -RootfsPath (Join-Path $TestDrive 'absent.ext4') | Out-Null
        $snap = Get-ForkdSnapshot -Tag fromforkd
        $snap.Backend | Should -Be ([Forkd.Core.BackendKind]::Firecracker)
        $snap.CreatedBy | Should -Be 'forkd'
        $snap.IsComplete | Should -BeTrue
    }

    It 'fail to fork with FirecrackerNotFound when there is no binary, saying how to supply one' {
        New-ForkdMadeSnapshot -Tag nofc -RootfsPath (Join-Path $TestDrive 'rootfs.ext4') | Out-Null
        $env:FORKD_FIRECRACKER = Join-Path $TestDrive 'no-such-firecracker'
        $err = $null
        Invoke-ForkdFork -Tag nofc -Count 1 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'FirecrackerNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        "$($err[0].ErrorDetails.RecommendedAction) $($err[0].Exception.Message)" | Should -Match 'FORKD_FIRECRACKER'
        "$($err[0].ErrorDetails.RecommendedAction) $($err[0].Exception.Message)" | Should -Match 'PATH'
        Get-ForkdChild -Tag nofc | Should -BeNullOrEmpty
    }

    It 'fail to fork with RootfsNotFound naming the path recorded in the vmstate' {
        $rootfs = Join-Path $TestDrive 'gone/python-rootfs.ext4'
        New-ForkdMadeSnapshot -Tag norootfs -RootfsPath $rootfs | Out-Null
        $env:FORKD_FIRECRACKER = (Get-Command true).Source   # any executable: the rootfs is checked before it starts
        $err = $null
        Invoke-ForkdFork -Tag norootfs -Count 1 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'RootfsNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err[0].Exception.Message | Should -BeLike "*$rootfs*"
        $err[0].ErrorDetails.RecommendedAction | Should -BeLike "*$rootfs*"   # how to supply it
        Get-ForkdChild -Tag norootfs | Should -BeNullOrEmpty
    }
}

Describe 'forkd CLI rules' -Tag ForkdInterop {
    It 'counts a symlinked memory.bin by its target in Get-ForkdSnapshot, as forkd images does' {
        $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR 'snapshots/linked')
        [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), [byte[]]::new(1000))
        $target = Join-Path $TestDrive 'ram.bin'
        $fs = [IO.File]::Create($target); $fs.SetLength(3MB); $fs.Dispose()
        New-Item -ItemType SymbolicLink -Path (Join-Path $dir 'memory.bin') -Target $target | Out-Null
        (Get-ForkdSnapshot -Tag linked).SizeBytes | Should -Be (1000 + 3MB)
    }

    It 'resolves the data dir like forkd when <Case>' -ForEach @(
        @{ Case = 'HOME is unset'; Unset = @('XDG_DATA_HOME', 'HOME'); Set = @{}; Expected = '/tmp/.local/share/forkd' }
        @{ Case = 'XDG_DATA_HOME is empty'; Unset = @(); Set = @{ XDG_DATA_HOME = ''; HOME = '/h' }; Expected = '<cwd>/forkd' }
        @{ Case = 'HOME is empty'; Unset = @('XDG_DATA_HOME'); Set = @{ HOME = '' }; Expected = '<cwd>/.local/share/forkd' }
    ) {
        # A fresh process: the data dir is resolved from that process's environment, as a user's shell would have it.
        $cwd = New-Item -ItemType Directory -Force -Path (Join-Path $TestDrive 'cwd')
        $pwsh = Join-Path $PSHOME 'pwsh'
        $start = [Diagnostics.ProcessStartInfo]::new($pwsh)
        foreach ($a in '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$env:FORKD_MODULE_PATH'; (Get-ForkdDataDirectory).DataDirectory") {
            $start.ArgumentList.Add($a)
        }
        $start.WorkingDirectory = $cwd.FullName
        $start.RedirectStandardOutput = $true
        $start.Environment.Remove('FORKD_DATA_DIR') | Out-Null
        foreach ($name in $Unset) { $start.Environment.Remove($name) | Out-Null }
        foreach ($name in $Set.Keys) { $start.Environment[$name] = $Set[$name] }
        $p = [Diagnostics.Process]::Start($start)
        $out = $p.StandardOutput.ReadToEnd().Trim()
        $p.WaitForExit()
        $out | Should -Be ($Expected -replace '<cwd>', $cwd.FullName)
    }
}
