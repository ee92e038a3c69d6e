#!/usr/bin/env pwsh
<#
.SYNOPSIS
    Export-ForkdPack / Import-ForkdPack against `tar | zstd -3` and `zstd -d | tar -x`, side by side.
.DESCRIPTION
    Builds a synthetic memory image of realistic shape (about 70% zero pages in runs, 20% compressible
    text-like pages, 10% random pages), then times each direction for both tools on the same files at
    the same level, with a warm page cache, taking the median of -Repeat runs. Our cmdlets run in a child
    pwsh so its peak RSS (VmHWM) can be read; their time is measured around the cmdlet inside that child
    (module load excluded; the CLI's process start-up is included, a few ms). Prints a markdown table.
.EXAMPLE
    dotnet pwsh ./bench/pack.bench.ps1 -ModulePath ./out/Forkd/Forkd.psd1
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $SizeMiB = 512,
    [int] $Repeat = 3,
    [string] $WorkDir = (Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-pack-$PID")
)
$ErrorActionPreference = 'Stop'
$ModulePath = (Resolve-Path $ModulePath).Path
$pwsh = Join-Path $PSHOME 'pwsh'

function Invoke-Bash([string] $Script) {
    & bash -c "set -euo pipefail; $Script"
    if ($LASTEXITCODE -ne 0) { throw "bash failed: $Script" }
}

# Wall and CPU (user + sys of the whole pipeline) seconds, from bash's `time`.
function Measure-Bash([string] $Script) {
    $timeFile = Join-Path $WorkDir 'time.txt'
    & bash -c "TIMEFORMAT='%R %U %S'; { time ( set -euo pipefail; $Script ) ; } 2> '$timeFile'"
    if ($LASTEXITCODE -ne 0) { throw "bash failed: $Script $(Get-Content -Raw $timeFile)" }
    $t = (Get-Content $timeFile | Select-Object -Last 1) -split ' '
    [pscustomobject]@{ Seconds = [double]$t[0]; CpuSeconds = [double]$t[1] + [double]$t[2] }
}

# One cmdlet call in a fresh pwsh: seconds around the cmdlet, and the process's peak RSS in KiB.
function Measure-Forkd([string] $DataDir, [string] $Command) {
    $script = @"
`$ErrorActionPreference = 'Stop'
`$env:FORKD_DATA_DIR = '$DataDir'
Import-Module '$ModulePath'
`$before = [int]((Select-String -Path /proc/self/status -Pattern '^VmRSS:\s+(\d+)').Matches[0].Groups[1].Value)
`$cpu = [Diagnostics.Process]::GetCurrentProcess().TotalProcessorTime
`$sw = [Diagnostics.Stopwatch]::StartNew()
$Command | Out-Null
`$sw.Stop()
`$cpu = ([Diagnostics.Process]::GetCurrentProcess().TotalProcessorTime - `$cpu).TotalSeconds
`$hwm = [int]((Select-String -Path /proc/self/status -Pattern '^VmHWM:\s+(\d+)').Matches[0].Groups[1].Value)
"`$(`$sw.Elapsed.TotalSeconds) `$hwm `$before `$cpu"
"@
    $out = & $pwsh -NoProfile -NonInteractive -Command $script
    if ($LASTEXITCODE -ne 0) { throw "child pwsh failed: $out" }
    $parts = ($out | Select-Object -Last 1) -split ' '
    [pscustomobject]@{ Seconds = [double]$parts[0]; PeakKiB = [int]$parts[1]; StartKiB = [int]$parts[2]; CpuSeconds = [double]$parts[3] }
}

function Get-Median([double[]] $Values) { ($Values | Sort-Object)[[int][Math]::Floor($Values.Count / 2)] }
function Get-MedianOf($Runs, [string] $Property) { Get-Median @($Runs | ForEach-Object { $_.$Property }) }

function Get-DiskUsage([string] $File) {
    $apparent = (Get-Item $File).Length
    $blocks = [long](& du -k --block-size=1 $File).Split("`t")[0]
    [pscustomobject]@{ Apparent = $apparent; Disk = $blocks }
}

New-Item -ItemType Directory -Force -Path $WorkDir | Out-Null
try {
    $data = Join-Path $WorkDir 'data'
    $snap = Join-Path $data 'snapshots/bench'
    New-Item -ItemType Directory -Force -Path $snap | Out-Null
    Write-Host "==> generating a $SizeMiB MiB synthetic memory image in $snap"
    $gen = @'
import os, random, sys
path, pages = sys.argv[1], int(sys.argv[2]) * 256
rng = random.Random(20261125)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10))) for _ in range(4000)]
corpus = b' '.join(rng.choice(words) for _ in range(400000))
zero = b'\0' * 4096
with open(path, 'wb') as f:
    written = 0
    while written < pages:
        r = rng.random()
        run = min(pages - written, rng.randint(1, 64))
        for _ in range(run):
            if r < 0.7:
                f.write(zero)
            elif r < 0.9:
                o = rng.randrange(0, len(corpus) - 4096)
                f.write(corpus[o:o + 4096])
            else:
                f.write(os.urandom(4096))
        written += run
'@
    Set-Content -Path (Join-Path $WorkDir 'gen.py') -Value $gen
    Invoke-Bash "python3 '$WorkDir/gen.py' '$snap/memory.bin' $SizeMiB"
    Invoke-Bash "head -c 14540 /dev/urandom > '$snap/vmstate'"
    Set-Content -Path "$snap/snapshot.json" -NoNewline -Value "{`n  `"vmstate`": `"vmstate`",`n  `"memory`": `"memory.bin`",`n  `"volumes`": []`n}"
    $zeroPages = [int](& python3 -c "import sys; d=open(sys.argv[1],'rb').read(); z=bytes(4096); print(sum(1 for i in range(0,len(d),4096) if d[i:i+4096]==z))" "$snap/memory.bin")
    $totalPages = $SizeMiB * 256
    Invoke-Bash "cat '$snap/memory.bin' '$snap/vmstate' > /dev/null"   # warm cache for both sides

    $load = (Get-Content /proc/loadavg).Split(' ')[0]
    $codec = & $pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; `$null = Get-ForkdDataDirectory; [Forkd.Core.Hub.ZstdCodec]::Implementation"
    $ourPack = Join-Path $WorkDir 'ours.forkd-snapshot.tar.zst'
    $cliPack = Join-Path $WorkDir 'cli.tar.zst'
    $results = @{ OursExport = @(); CliExport = @(); OursImport = @(); CliImport = @(); CliImportOurs = @(); ExportPeak = @(); ImportPeak = @() }
    $startKiB = 0
    for ($i = 1; $i -le $Repeat; $i++) {
        Write-Host "==> run $i of $Repeat"
        $m = Measure-Forkd $data "Export-ForkdPack -Tag bench -Path '$ourPack' -Force -CompressionLevel 3"
        $results.OursExport += $m; $results.ExportPeak += $m.PeakKiB; $startKiB = $m.StartKiB
        $results.CliExport += Measure-Bash "tar -cf - -C '$snap' snapshot.json vmstate memory.bin | zstd -3 -q -f -o '$cliPack'"

        $target = Join-Path $WorkDir "import-$i"
        $m = Measure-Forkd $target "Import-ForkdPack -Path '$ourPack'"
        $results.OursImport += $m; $results.ImportPeak += $m.PeakKiB
        $cliOut = Join-Path $WorkDir "cli-out-$i"
        New-Item -ItemType Directory -Path $cliOut | Out-Null
        $results.CliImport += Measure-Bash "zstd -d -c -q '$cliPack' | tar -xf - -C '$cliOut'"
        $cliOurs = Join-Path $WorkDir "cli-ours-$i"
        New-Item -ItemType Directory -Path $cliOurs | Out-Null
        $results.CliImportOurs += Measure-Bash "zstd -d -c -q '$ourPack' | tar -xf - -C '$cliOurs'"
        if ($i -lt $Repeat) { Remove-Item -Recurse -Force $target, $cliOut, $cliOurs }
    }

    $oursDu = Get-DiskUsage (Join-Path $WorkDir "import-$Repeat/snapshots/bench/memory.bin")
    $cliDu = Get-DiskUsage (Join-Path $WorkDir "cli-out-$Repeat/memory.bin")
    $same = (Get-FileHash "$snap/memory.bin").Hash -eq (Get-FileHash (Join-Path $WorkDir "import-$Repeat/snapshots/bench/memory.bin")).Hash
    if (-not $same) { throw 'imported memory.bin differs from the source' }
    $oursSize = (Get-Item $ourPack).Length
    $cliSize = (Get-Item $cliPack).Length
    $mib = 1048576.0
    $cpu = (Get-Content /proc/cpuinfo | Select-String '^model name' | Select-Object -First 1).Line -replace '^model name\s*:\s*', ''
    $zstdVersion = (& zstd --version) -replace '^.*v(\d+\.\d+\.\d+).*$', '$1'
    $fmt = { param($a, $b) '{0:F2}x' -f ($a / $b) }

    $oe = Get-MedianOf $results.OursExport Seconds; $ce = Get-MedianOf $results.CliExport Seconds
    $oi = Get-MedianOf $results.OursImport Seconds; $ci = Get-MedianOf $results.CliImport Seconds; $co = Get-MedianOf $results.CliImportOurs Seconds
    $oeCpu = Get-MedianOf $results.OursExport CpuSeconds; $ceCpu = Get-MedianOf $results.CliExport CpuSeconds
    $oiCpu = Get-MedianOf $results.OursImport CpuSeconds; $ciCpu = Get-MedianOf $results.CliImport CpuSeconds
    $lines = @(
        "Synthetic memory image: $SizeMiB MiB, $([Math]::Round(100.0 * $zeroPages / $totalPages))% zero pages (runs of 1-64 pages of each kind), ~20% text-like, ~10% random; vmstate 14 KiB."
        "Machine: $([Environment]::ProcessorCount) cores ($cpu), zstd $zstdVersion, codec $codec, warm page cache, median of $Repeat runs; load average before: $load."
        ''
        '| Direction | Export-/Import-ForkdPack | CLI pipeline | ours / CLI |'
        '|---|---:|---:|---:|'
        "| Pack, level 3 (s) | $('{0:F2}' -f $oe) | $('{0:F2}' -f $ce) ``tar -cf - … \| zstd -3`` | $(& $fmt $oe $ce) |"
        "| Pack, CPU seconds (user + sys) | $('{0:F2}' -f $oeCpu) | $('{0:F2}' -f $ceCpu) | $(& $fmt $oeCpu $ceCpu) |"
        "| Pack size (MiB) | $('{0:F1}' -f ($oursSize / $mib)) | $('{0:F1}' -f ($cliSize / $mib)) | $(& $fmt $oursSize $cliSize) |"
        "| Unpack (s) | $('{0:F2}' -f $oi) (verifies SHA-256) | $('{0:F2}' -f $ci) ``zstd -d \| tar -x`` (no verification) | $(& $fmt $oi $ci) |"
        "| Unpack, CPU seconds (user + sys) | $('{0:F2}' -f $oiCpu) | $('{0:F2}' -f $ciCpu) | $(& $fmt $oiCpu $ciCpu) |"
        "| Unpack of our pack by the CLI (s) | | $('{0:F2}' -f $co) | |"
        "| memory.bin on disk after unpack (MiB, du / apparent) | $('{0:F1}' -f ($oursDu.Disk / $mib)) / $('{0:F1}' -f ($oursDu.Apparent / $mib)) | $('{0:F1}' -f ($cliDu.Disk / $mib)) / $('{0:F1}' -f ($cliDu.Apparent / $mib)) | |"
        "| Peak RSS of the pwsh process (MiB): pack / unpack | $('{0:F0}' -f ((($results.ExportPeak | Measure-Object -Maximum).Maximum) / 1024)) / $('{0:F0}' -f ((($results.ImportPeak | Measure-Object -Maximum).Maximum) / 1024)) (pwsh + module alone: $('{0:F0}' -f ($startKiB / 1024))) | | |"
        ''
        "Rerun: ``dotnet pwsh ./bench/pack.bench.ps1 -ModulePath ./out/Forkd/Forkd.psd1`` (or ``dotnet pwsh ./build.ps1 Bench``)."
    )
    $lines | ForEach-Object { Write-Output $_ }
}
finally {
    Remove-Item -Recurse -Force $WorkDir -ErrorAction Ignore
}
