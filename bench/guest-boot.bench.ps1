<#
.SYNOPSIS
    Cold boot of the minimal guest image under QEMU/TCG to the agent's first ping: the
    uncompressed initramfs Build-ForkdImage writes vs the same archive gzip-compressed, and with
    vs without the byte-compiled agent modules. Variants alternate, side by side in one run.
.DESCRIPTION
    Reports wall time and QEMU's own CPU time (user+system) to the first ping. On a shared
    2-core machine wall time follows the other load; QEMU CPU time is the steadier comparison.
#>
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [int] $Rounds = 3
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
$repo = Split-Path $PSScriptRoot -Parent
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $repo '.cache' }
$image = Build-ForkdImage -Recipe minimal
$boot = Join-Path $repo 'tests/guest/Invoke-GuestBoot.ps1'
$work = Join-Path ([IO.Path]::GetTempPath()) ("forkd-bench-boot-" + [Guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory $work | Out-Null
try {
    $gz = Join-Path $work 'initramfs.cpio.gz'
    & sh -c "gzip -6 -c '$($image.InitramfsPath)' > '$gz'"
    # Same archive without __pycache__: unpack with cpio, drop the caches, repack in name order.
    $tree = New-Item -ItemType Directory (Join-Path $work 'tree')
    & sh -c "cd '$tree' && cpio -id --quiet < '$($image.InitramfsPath)' 2>/dev/null; find . -name __pycache__ -prune -exec rm -rf {} +; find . | LC_ALL=C sort | cpio -o -H newc --quiet > '$work/nopyc.cpio'"
    $variants = [ordered]@{
        'uncompressed (built)' = $image.InitramfsPath
        'gzip -6'              = $gz
        'no .pyc'              = Join-Path $work 'nopyc.cpio'
    }
    $rows = foreach ($round in 1..$Rounds) {
        foreach ($name in $variants.Keys) {
            $r = & $boot -Image $image -InitramfsPath $variants[$name] -TimeoutSeconds 180
            $load = (Get-Content /proc/loadavg -Raw).Split(' ')[0]
            [pscustomobject]@{ Round = $round; Variant = $name; WallSeconds = $r.BootSeconds; QemuCpuSeconds = $r.QemuCpuSeconds; LoadAvg = $load
                Bytes = (Get-Item $variants[$name]).Length }
        }
    }
    $rows | Format-Table -AutoSize | Out-String | Write-Host
    $base = ($rows | Where-Object Variant -eq 'uncompressed (built)' | Measure-Object QemuCpuSeconds -Average).Average
    $rows | Group-Object Variant | ForEach-Object {
        $cpu = ($_.Group | Measure-Object QemuCpuSeconds -Average).Average
        $wall = ($_.Group | Measure-Object WallSeconds -Average).Average
        [pscustomobject]@{ Variant = $_.Name; MiB = [Math]::Round($_.Group[0].Bytes / 1MB, 1); MeanWall = [Math]::Round($wall, 2)
            MeanQemuCpu = [Math]::Round($cpu, 2); CpuVsBuilt = [Math]::Round($cpu / $base, 2) }
    } | Format-Table -AutoSize | Out-String | Write-Host
} finally {
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
}
