#Requires -Version 7.4
# Snapshot Hub cmdlets over the built module: round trip, a fixture pack made by the tar and zstd
# command-line tools, HTTP pull/push against a python3 server on 127.0.0.1, Ctrl+C and a killed import.

BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedDataDir = $env:FORKD_DATA_DIR
    $script:savedHub = $env:FORKD_HUB_URL
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
    Remove-Item Env:FORKD_HUB_URL -ErrorAction Ignore

    function New-TestSnapshot {
        param([string] $Tag, [string] $DataDir = $env:FORKD_DATA_DIR, [int] $MiB = 4, [switch] $Random)
        $dir = Join-Path $DataDir "snapshots/$Tag"
        New-Item -ItemType Directory -Force -Path $dir | Out-Null
        if ($Random) {
            & bash -c "head -c $($MiB)M /dev/urandom > '$dir/memory.bin'"
        } else {
            # zero pages, text pages and random pages, like a guest's memory
            & python3 -c "import os,sys; f=open(sys.argv[1],'wb'); [f.write(b'\0'*4096 if i%10<6 else (b'warm page text. '*256 if i%10<8 else os.urandom(4096))) for i in range(int(sys.argv[2])*256)]" "$dir/memory.bin" $MiB
        }
        & bash -c "head -c 14540 /dev/urandom > '$dir/vmstate'"
        Set-Content -Path "$dir/snapshot.json" -NoNewline -Value "{`n  `"vmstate`": `"/home/builder/.local/share/forkd/snapshots/$Tag/vmstate`",`n  `"memory`": `"/home/builder/.local/share/forkd/snapshots/$Tag/memory.bin`",`n  `"volumes`": []`n}"
        $dir
    }

    function Get-Sha256([string] $Path) { (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash.ToLowerInvariant() }

    function Get-Leftover([string] $DataDir) {
        @(Get-ChildItem -Force -Path (Join-Path $DataDir 'staging') -ErrorAction Ignore | Where-Object Name -like 'forkd-*')
    }
}

AfterAll {
    $env:FORKD_DATA_DIR = $script:savedDataDir
    if ($null -ne $script:savedHub) { $env:FORKD_HUB_URL = $script:savedHub }
}

Describe 'Export-ForkdPack and Import-ForkdPack' -Tag Hub {
    BeforeAll {
        $script:src = New-TestSnapshot -Tag 'py.agent'
        $script:pack = Join-Path $TestDrive 'py.pack.tar.zst'
    }

    It 'exports a pack object with files, sizes, hashes and ratio' {
        $info = Export-ForkdPack -Tag 'py.agent' -Path $pack -Description 'round trip'
        $info | Should -BeOfType ([Forkd.Core.Hub.PackInfo])
        $info.Files.Path | Should -Be @('snapshot.json', 'vmstate', 'memory.bin')
        ($info.Files | Where-Object Path -eq 'memory.bin').Sha256 | Should -Be (Get-Sha256 "$src/memory.bin")
        $info.PackedBytes | Should -Be (Get-Item $pack).Length
        $info.Ratio | Should -BeGreaterThan 2
    }

    It 'writes the default name in the current directory' {
        Push-Location $TestDrive
        try { $info = Export-ForkdPack -Tag 'py.agent' } finally { Pop-Location }
        $info.Path | Should -Be (Join-Path $TestDrive 'py-agent.forkd-snapshot.tar.zst')
    }

    It 'refuses to overwrite without -Force, honours -WhatIf, overwrites with -Force' {
        Set-Content -Path "$TestDrive/taken.tar.zst" -Value 'precious'
        Export-ForkdPack -Tag 'py.agent' -Path "$TestDrive/taken.tar.zst" -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'PackOutputExists,Forkd.PowerShell.Commands.ExportForkdPackCommand'
        $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        Export-ForkdPack -Tag 'py.agent' -Path "$TestDrive/taken.tar.zst" -Force -WhatIf | Should -BeNullOrEmpty
        Get-Content "$TestDrive/taken.tar.zst" | Should -Be 'precious'
        (Export-ForkdPack -Tag 'py.agent' -Path "$TestDrive/taken.tar.zst" -Force).PackedBytes | Should -BeGreaterThan 1000
    }

    It 'reports a missing output directory and an unknown tag with their ErrorIds' {
        Export-ForkdPack -Tag 'py.agent' -Path "$TestDrive/no/such/dir/x.tar.zst" -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'PackOutputDirectoryNotFound,Forkd.PowerShell.Commands.ExportForkdPackCommand'
        Export-ForkdPack -Tag 'nosuch' -Path "$TestDrive/x.tar.zst" -ErrorVariable err2 -ErrorAction SilentlyContinue
        $err2[0].FullyQualifiedErrorId | Should -Be 'SnapshotNotFound,Forkd.PowerShell.Commands.ExportForkdPackCommand'
        Test-Path "$TestDrive/x.tar.zst" | Should -BeFalse
    }

    It 'imports into another data dir, fork-ready, with portable metadata and zero pages as holes' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'other'
        try {
            $snap = $pack | Import-ForkdPack
            $snap.Tag | Should -Be 'py.agent'
            $snap.IsComplete | Should -BeTrue
            $snap.Path | Should -Be (Join-Path $TestDrive 'other/snapshots/py.agent')
            Get-Sha256 "$($snap.Path)/memory.bin" | Should -Be (Get-Sha256 "$src/memory.bin")
            Get-Content -Raw "$($snap.Path)/snapshot.json" | Should -Not -Match '/home/builder'
            $snap.Metadata.ResolveMemory($snap.Path) | Should -Be "$($snap.Path)/memory.bin"
            $snap.DiskBytes | Should -BeLessThan ($snap.SizeBytes * 0.7)
            Get-Leftover $env:FORKD_DATA_DIR | Should -BeNullOrEmpty
        } finally { $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data' }
    }

    It 'refuses an existing tag without -Force and replaces it with -Force' {
        Import-ForkdPack -Path $pack -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'SnapshotExists,Forkd.PowerShell.Commands.ImportForkdPackCommand'
        Import-ForkdPack -Path $pack -Force -WhatIf | Should -BeNullOrEmpty
        (Import-ForkdPack -Path $pack -Force).IsComplete | Should -BeTrue
        (Import-ForkdPack -Path $pack -Tag 'copy').Tag | Should -Be 'copy'
    }

    It 'reports a file that is not a pack with PackNotZstd' {
        Set-Content -Path "$TestDrive/not.tar.zst" -Value '<html>Access Denied</html>'
        Import-ForkdPack -Path "$TestDrive/not.tar.zst" -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be 'PackNotZstd,Forkd.PowerShell.Commands.ImportForkdPackCommand'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        Get-Leftover $env:FORKD_DATA_DIR | Should -BeNullOrEmpty
    }

    It 'unpacks with the zstd and tar command-line tools, manifest first' {
        $out = Join-Path $TestDrive 'cli-out'
        New-Item -ItemType Directory $out | Out-Null
        (& bash -c "zstd -dc '$pack' | tar -tf -") | Should -Be @('manifest.toml', 'snapshot.json', 'vmstate', 'memory.bin')
        & bash -c "zstd -dc '$pack' | tar -xf - -C '$out'"
        $LASTEXITCODE | Should -Be 0
        $manifest = Get-Content -Raw "$out/manifest.toml"
        $manifest | Should -Match '(?m)^forkd_pack_version = 1$'
        $manifest | Should -Match ([regex]::Escape('sha256 = "' + (Get-Sha256 "$out/memory.bin") + '"'))
    }
}

Describe 'A pack made by tar and zstd on the command line' -Tag Hub {
    It 'imports a forkd-layout pack with another host''s absolute paths' {
        $build = Join-Path $TestDrive 'fixture'
        New-Item -ItemType Directory $build | Out-Null
        $script = @'
set -euo pipefail
cd "$1"
head -c 14540 /dev/urandom > vmstate
{ head -c 65536 /dev/zero; head -c 8192 /dev/urandom; head -c 131072 /dev/zero; } > memory.bin
printf '{\n  "vmstate": "/root/.local/share/forkd/snapshots/fixture/vmstate",\n  "memory": "/root/.local/share/forkd/snapshots/fixture/memory.bin",\n  "volumes": []\n}' > snapshot.json
{
  printf 'forkd_pack_version = 1\ntag = "fixture"\ndescription = "made by tar and zstd"\ncreated_at = "2026-05-14T06:47:27Z"\nforkd_version = "0.1.3"\n'
  for f in snapshot.json vmstate memory.bin; do
    printf '\n[[files]]\npath = "%s"\nsize = %s\nsha256 = "%s"\n' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
  done
} > manifest.toml
tar --format=gnu --owner=0 --group=0 -cf fixture.tar manifest.toml snapshot.json vmstate memory.bin
zstd -q -3 fixture.tar -o fixture.forkd-snapshot.tar.zst
'@
        & bash -c $script bash $build
        $LASTEXITCODE | Should -Be 0
        $snap = Import-ForkdPack -Path "$build/fixture.forkd-snapshot.tar.zst"
        $snap.Tag | Should -Be 'fixture'
        $snap.IsComplete | Should -BeTrue
        Get-Sha256 "$($snap.Path)/memory.bin" | Should -Be (Get-Sha256 "$build/memory.bin")
        $json = Get-Content -Raw "$($snap.Path)/snapshot.json" | ConvertFrom-Json
        $json.vmstate | Should -Be 'vmstate'
        $json.memory | Should -Be 'memory.bin'
    }
}

Describe 'Pull and push over HTTP' -Tag Hub {
    BeforeAll {
        $script:www = Join-Path $TestDrive 'www'
        New-Item -ItemType Directory $www | Out-Null
        $portFile = Join-Path $TestDrive 'port'
        $script:server = Start-Process python3 -ArgumentList "$PSScriptRoot/hub_server.py", $www, $portFile -PassThru -RedirectStandardError (Join-Path $TestDrive 'server.err') -RedirectStandardOutput (Join-Path $TestDrive 'server.out')
        $deadline = [DateTime]::UtcNow.AddSeconds(20)
        while (-not (Test-Path $portFile) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
        $script:base = "http://127.0.0.1:$(Get-Content $portFile)"
        New-TestSnapshot -Tag 'web' | Out-Null
        Export-ForkdPack -Tag 'web' -Path "$www/web.forkd-snapshot.tar.zst" | Out-Null
    }
    AfterAll {
        if ($script:server) { Stop-Process -Id $script:server.Id -Force -ErrorAction Ignore }
    }
    BeforeEach {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive ('pull-' + [guid]::NewGuid().ToString('n'))
    }
    AfterEach {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
    }

    It 'pulls by URL through a redirect' {
        (Import-ForkdPack -Uri "$base/redirect/web.forkd-snapshot.tar.zst").Tag | Should -Be 'web'
    }

    It 'pulls the owner/tag short form from -Hub and from FORKD_HUB_URL' {
        Copy-Item "$www/web.forkd-snapshot.tar.zst" "$www/web-2.forkd-snapshot.tar.zst"
        (Import-ForkdPack -Uri 'files/web_2' -Hub $base -Tag one).Tag | Should -Be 'one'
        $env:FORKD_HUB_URL = "$base/"
        try { (Import-ForkdPack -Uri 'files/web.2' -Tag two).Tag | Should -Be 'two' } finally { Remove-Item Env:FORKD_HUB_URL }
    }

    It 'explains a missing hub, a 404 and a 403' -TestCases @(
        @{ Uri = 'alice/py'; Id = 'HubNotConfigured' }
        @{ Uri = 'PLACEHOLDER/files/absent.forkd-snapshot.tar.zst'; Id = 'HubPackNotFound' }
        @{ Uri = 'PLACEHOLDER/forbidden/web.forkd-snapshot.tar.zst?X-Amz-Signature=s3cr3t'; Id = 'HubAccessDenied' }
    ) {
        Import-ForkdPack -Uri ($Uri -replace 'PLACEHOLDER', $base) -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Be "$Id,Forkd.PowerShell.Commands.ImportForkdPackCommand"
        $err[0].Exception.Message | Should -Not -Match 's3cr3t'
        Get-ForkdSnapshot | Should -BeNullOrEmpty
    }

    It 'publishes with Content-Length and no Content-Type, and the upload imports' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $r = Publish-ForkdPack -Tag 'web' -Uri "$base/upload/pushed.tar.zst?sig=abc"
        $r.StatusCode | Should -Be 200
        $r.Uri | Should -Not -Match 'sig=abc'
        $headers = Get-Content -Raw "$www/pushed.tar.zst.headers.json" | ConvertFrom-Json
        [long]$headers.'content-length' | Should -Be $r.BytesSent
        $headers.'content-type' | Should -BeNullOrEmpty
        (Get-Item "$www/pushed.tar.zst.uploaded").Length | Should -Be $r.BytesSent
        (Import-ForkdPack -Path "$www/pushed.tar.zst.uploaded" -Tag pushed).IsComplete | Should -BeTrue
        @(Get-ChildItem ([IO.Path]::GetTempPath()) -Filter "forkd-push-web-$PID-*") | Should -BeNullOrEmpty
    }

    It 'stops cleanly when the pipeline is stopped during a stalled download' {
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:FORKD_MODULE_PATH'; `$env:FORKD_DATA_DIR = '$env:FORKD_DATA_DIR'; Import-ForkdPack -Uri '$base/slow/web.forkd-snapshot.tar.zst'")
            $async = $ps.BeginInvoke()
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while (-not (Get-Leftover $env:FORKD_DATA_DIR) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            Get-Leftover $env:FORKD_DATA_DIR | Should -Not -BeNullOrEmpty -Because 'the import should have started'
            Start-Sleep -Milliseconds 300
            $ps.Stop()
            $async.IsCompleted | Should -BeTrue
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        } finally { $ps.Dispose() }
        Get-ForkdSnapshot | Should -BeNullOrEmpty
        Get-Leftover $env:FORKD_DATA_DIR | Should -BeNullOrEmpty
    }
}

Describe 'An import killed midway' -Tag Hub {
    It 'leaves no tag, and the next store operation removes its unpack dir' {
        New-TestSnapshot -Tag 'big' -MiB 48 -Random | Out-Null
        $bigPack = Join-Path $TestDrive 'big.tar.zst'
        Export-ForkdPack -Tag 'big' -Path $bigPack | Out-Null
        $target = Join-Path $TestDrive 'killed'
        $fifo = Join-Path $TestDrive 'pack.fifo'
        & mkfifo $fifo
        $half = [long]((Get-Item $bigPack).Length / 2)
        # Feed half of the pack and keep the pipe open, so the importer is mid-way when it dies.
        Set-Content "$TestDrive/feed.sh" "exec > '$fifo'; head -c $half '$bigPack'; exec sleep 120"
        Set-Content "$TestDrive/import.ps1" "`$env:FORKD_DATA_DIR = '$target'; Import-Module '$env:FORKD_MODULE_PATH'; Import-ForkdPack -Path '$fifo'"
        $feeder = Start-Process bash -ArgumentList "$TestDrive/feed.sh" -PassThru `
            -RedirectStandardError (Join-Path $TestDrive 'feeder.err') -RedirectStandardOutput (Join-Path $TestDrive 'feeder.out')
        $child = Start-Process (Join-Path $PSHOME 'pwsh') -ArgumentList '-NoProfile', '-NonInteractive', '-File', "$TestDrive/import.ps1" -PassThru `
            -RedirectStandardError (Join-Path $TestDrive 'child.err') -RedirectStandardOutput (Join-Path $TestDrive 'child.out')
        try {
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            while ([DateTime]::UtcNow -lt $deadline) {
                $work = Get-Leftover $target
                if ($work -and (Get-ChildItem $work[0].FullName -Filter memory.bin -ErrorAction Ignore)) { break }
                Start-Sleep -Milliseconds 100
            }
            $why = "the import should be extracting (child: $(Get-Content -Raw (Join-Path $TestDrive 'child.err') -ErrorAction Ignore) feeder: $(Get-Content -Raw (Join-Path $TestDrive 'feeder.err') -ErrorAction Ignore))"
            Get-Leftover $target | Should -HaveCount 1 -Because $why
            Stop-Process -Id $child.Id -Force
            $child.WaitForExit()
        } finally {
            Stop-Process -Id $feeder.Id -Force -ErrorAction Ignore
            Stop-Process -Id $child.Id -Force -ErrorAction Ignore
        }
        $env:FORKD_DATA_DIR = $target
        try {
            Get-Leftover $target | Should -HaveCount 1 -Because 'the killed import left its unpack dir'
            # The next store operation rolls back what the crash left: the dead unpack dir goes, no tag appears.
            Get-ForkdSnapshot | Should -BeNullOrEmpty
            Get-Leftover $target | Should -BeNullOrEmpty
            Remove-ForkdStaleWorkDir -Kind Unpack -Confirm:$false | Where-Object Action -eq 'Removed' | Should -BeNullOrEmpty
        } finally { $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data' }
    }
}

# The real proof of "fork-ready": a warmed QEMU snapshot, exported, imported under another data dir,
# forks and still holds its warm state. Boots a VM (about a minute under TCG), so it has its own tag.
Describe 'A warmed snapshot moved to another data dir' -Tag HubEngine {
    BeforeAll {
        $script:savedCache = $env:FORKD_CACHE_DIR
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'warm-src'
        $script:source = New-ForkdSnapshot -Tag hubwarm -Recipe minimal -WarmupCode "warm = {'token': 'hub-w4rm', 'n': sum(range(1000))}"
        $script:movedPack = Join-Path $TestDrive 'hubwarm.forkd-snapshot.tar.zst'
        $script:info = Export-ForkdPack -Tag hubwarm -Path $movedPack
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'warm-dst'
        $script:imported = Import-ForkdPack -Path $movedPack
        $script:child = Invoke-ForkdFork -Tag hubwarm -Count 1
    }
    AfterAll {
        # Every data dir this block forked in: a child is found only through its own data dir's registry.
        foreach ($dir in 'warm-dst', 'warm-sparse', 'warm-src') {
            $env:FORKD_DATA_DIR = Join-Path $TestDrive $dir
            Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        }
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'packs the kernel and initramfs with it' {
        $info.Files.Path | Should -Contain 'vmlinux'
        $info.Files.Path | Should -Contain 'initramfs.img'
        $imported.Path | Should -BeLike "$TestDrive/warm-dst/*"
        Get-Content -Raw "$($imported.Path)/snapshot.json" | Should -Not -Match ([regex]::Escape("$TestDrive/warm-src"))
    }

    It 'forks from the imported copy, and the child has the warm state' {
        $child.State | Should -Be 'Running'
        (Get-Content "/proc/$($child.ProcessId)/cmdline" -Raw) -replace "`0", ' ' | Should -Match ([regex]::Escape("$TestDrive/warm-dst"))
        $r = $child | Invoke-ForkdEval -Code "(warm['token'], warm['n'])"
        $r.Error | Should -BeNullOrEmpty
        $r.Repr | Should -Be "('hub-w4rm', 499500)"
    }

    It 'imports and forks a pack whose memory.bin is a GNU tar sparse member, as forkd writes it' {
        $src = Join-Path $TestDrive 'warm-src/snapshots/hubwarm'
        $stage = Join-Path $TestDrive 'sparse-stage'
        New-Item -ItemType Directory $stage | Out-Null
        foreach ($f in 'snapshot.json', 'vmstate', 'vmlinux', 'initramfs.img', 'memory.bin') { Copy-Item "$src/$f" "$stage/$f" }
        & fallocate --dig-holes "$stage/memory.bin"
        $lines = @('forkd_pack_version = 1', 'tag = "hubsparse"', 'created_at = "2026-05-14T06:47:27Z"', 'forkd_version = "0.1.3"')
        foreach ($f in 'snapshot.json', 'vmstate', 'vmlinux', 'initramfs.img', 'memory.bin') {
            $lines += '', '[[files]]', "path = `"$f`"", "size = $((Get-Item "$stage/$f").Length)", "sha256 = `"$((Get-FileHash -Algorithm SHA256 "$stage/$f").Hash.ToLowerInvariant())`""
        }
        Set-Content -Path "$stage/manifest.toml" -Value ($lines -join "`n")
        $pack = Join-Path $TestDrive 'hubsparse.forkd-snapshot.tar.zst'
        & bash -c "cd '$stage' && tar --format=gnu --sparse -cf - manifest.toml snapshot.json vmstate vmlinux initramfs.img memory.bin | zstd -q -3 -o '$pack'"
        $LASTEXITCODE | Should -Be 0
        # Really a sparse member: GNU tar lists it as such, and the pack is far smaller than the image.
        (& bash -c "zstd -dc '$pack' | tar -tvf - --sparse | grep memory.bin") | Should -Match 'memory.bin'
        & bash -c "zstd -dc '$pack' > '$stage/p.tar' && python3 -c 'import sys, tarfile; print(tarfile.open(sys.argv[1]).getmember(""memory.bin"").issparse())' '$stage/p.tar'" | Should -Be 'True'
        (Get-Item $pack).Length | Should -BeLessThan ((Get-Item "$src/memory.bin").Length / 4)

        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'warm-sparse'
        try {
            $snap = Import-ForkdPack -Path $pack
            $snap.Tag | Should -Be 'hubsparse'
            (Get-FileHash "$($snap.Path)/memory.bin").Hash | Should -Be (Get-FileHash "$src/memory.bin").Hash
            $child = Invoke-ForkdFork -Tag hubsparse -Count 1
            try {
                ($child | Invoke-ForkdEval -Code "(warm['token'], warm['n'])").Repr | Should -Be "('hub-w4rm', 499500)"
            }
            finally { $child | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue }
        }
        finally { $env:FORKD_DATA_DIR = Join-Path $TestDrive 'warm-src' }
    }
}

Describe 'Volumes of an imported pack' -Tag Hub {
    BeforeAll {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'vol-src'
        $dir = Join-Path $env:FORKD_DATA_DIR 'snapshots/withvol'
        New-Item -ItemType Directory $dir -Force | Out-Null
        [IO.File]::WriteAllBytes("$dir/memory.bin", [byte[]]::new(65536))
        [IO.File]::WriteAllBytes("$dir/vmstate", [byte[]](1..200))
        Set-Content -Path "$dir/snapshot.json" -NoNewline -Value '{"vmstate":"/srv/x/vmstate","memory":"/srv/x/memory.bin","volumes":[{"host_path":"/etc/passwd","guest_path":"/opt/cache","read_only":false}]}'
        $script:volPack = Join-Path $TestDrive 'withvol.forkd-snapshot.tar.zst'
        Export-ForkdPack -Tag withvol -Path $volPack | Out-Null
        $script:hostFile = Join-Path $TestDrive 'cache.img'
        [IO.File]::WriteAllBytes($hostFile, [byte[]]::new(4096))
    }
    AfterAll { $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data' }

    It 'drops the pack''s host path and warns that the volume is unbound' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'vol-dst1'
        $snap = Import-ForkdPack -Path $volPack -WarningVariable warn 3>$null
        $snap.Metadata.Volumes[0].HostPath | Should -BeNullOrEmpty
        $snap.Metadata.Volumes[0].GuestPath | Should -Be '/opt/cache'
        "$warn" | Should -Match 'VolumeUnbound'
        Get-Content -Raw "$($snap.Path)/snapshot.json" | Should -Not -Match '/etc/passwd'
    }

    It 'binds -Volume HOST:GUEST:ro, and refuses a binding for a guest path the snapshot lacks' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'vol-dst2'
        $snap = Import-ForkdPack -Path $volPack -Volume "${hostFile}:/opt/cache:ro"
        $snap.Metadata.Volumes[0].HostPath | Should -Be $hostFile
        $snap.Metadata.Volumes[0].ReadOnly | Should -BeTrue
        Import-ForkdPack -Path $volPack -Tag other -Volume "${hostFile}:/elsewhere" -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^VolumeBindingUnknown'
    }

    It 'refuses a pack above -MaxSize with PackTooLarge' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'vol-dst3'
        Import-ForkdPack -Path $volPack -MaxSize 1KB -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^PackTooLarge'
    }
}
