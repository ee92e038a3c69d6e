<#
.SYNOPSIS
    Test helper: cold-boots a Forkd guest image in QEMU/TCG, waits for the agent's ping, optionally
    runs evals, then kills QEMU. Uses the measured command line of shared/ENVIRONMENT.md.
.DESCRIPTION
    Needs the Forkd module imported (it uses Forkd.Core's AgentClient and HostTsc). Returns an
    object with the ping, the eval results, the boot time to the first ping and the console log.
    QEMU and its temp dir are always removed, also on failure or Ctrl+C.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [Forkd.Core.Guest.GuestImage] $Image,
    [string[]] $Eval = @(),
    # One command (argv) to run with exec after the ping.
    [string[]] $Exec = @(),
    [int] $TimeoutSeconds = 120,
    [int] $MemoryMiB = 0,
    # Boot this initramfs instead of the image's (benchmarks compare variants).
    [string] $InitramfsPath
)
$ErrorActionPreference = 'Stop'
$dir = Join-Path ([IO.Path]::GetTempPath()) ("forkd-test-boot-" + [Guid]::NewGuid().ToString('N').Substring(0, 8))
New-Item -ItemType Directory $dir | Out-Null
$socket = Join-Path $dir 'agent.sock'
$consoleLog = Join-Path $dir 'console.log'
$khz = [Forkd.Core.Host.HostTsc]::KiloHertz()
if (-not $khz) { throw 'cannot read the host TSC rate (needed for tsc_early_khz under TCG)' }
$mem = if ($MemoryMiB -gt 0) { $MemoryMiB } else { $Image.MemoryMiB }
$append = "console=ttyS0 panic=-1 quiet tsc_early_khz=$khz tsc=reliable $($Image.KernelCommandLine)"
$qemuArgs = @(
    '-M', 'microvm,x-option-roms=off,rtc=off,isa-serial=on', '-accel', 'tcg', '-cpu', 'max', '-m', "${mem}M",
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', "file:$consoleLog",
    '-kernel', $Image.KernelPath, '-initrd', $(if ($InitramfsPath) { $InitramfsPath } else { $Image.InitramfsPath }), '-append', $append,
    '-device', 'virtio-serial-device',
    '-chardev', "socket,id=agent,path=$socket,server=on,wait=off",
    '-device', "virtserialport,chardev=agent,name=$($Image.AgentPortName)"
)
$clock = [Diagnostics.Stopwatch]::StartNew()
$info = [Diagnostics.ProcessStartInfo]::new('qemu-system-x86_64')
foreach ($a in $qemuArgs) { $info.ArgumentList.Add($a) }
$info.RedirectStandardError = $true
$info.UseShellExecute = $false
$qemu = [Diagnostics.Process]::Start($info)
$qemuErr = $qemu.StandardError.ReadToEndAsync()
# Waiting stops as soon as QEMU exits, instead of running into the timeout.
$exited = [Threading.CancellationTokenSource]::new()
$null = $qemu.WaitForExitAsync().ContinueWith([Action[Threading.Tasks.Task]] { param($t) try { $exited.Cancel() } catch { } })
$client = $null
try {
    $timeout = [TimeSpan]::FromSeconds($TimeoutSeconds)
    $client = [Forkd.Core.Guest.AgentClient]::ConnectUnixAsync($socket, $timeout, $exited.Token).GetAwaiter().GetResult()
    # The request waits in the socket until the agent opens its port, so one ping measures the boot.
    $ping = $client.PingAsync($timeout, $exited.Token).GetAwaiter().GetResult()
    $bootSeconds = $clock.Elapsed.TotalSeconds
    # QEMU's own CPU time to the first ping: less sensitive than wall time to other load on the host.
    $statLine = Get-Content "/proc/$($qemu.Id)/stat" -Raw
    $stat = $statLine.Substring($statLine.LastIndexOf(')') + 2) -split ' '   # [11] utime, [12] stime, in ticks
    $cpuSeconds = ([double]$stat[11] + [double]$stat[12]) / 100
    $results = foreach ($code in $Eval) {
        $client.EvalAsync($code, $timeout, [Threading.CancellationToken]::None).GetAwaiter().GetResult()
    }
    $execResult = if ($Exec.Count -gt 0) {
        $client.ExecAsync([string[]]$Exec, [TimeSpan]::FromSeconds(60), [Threading.CancellationToken]::None).GetAwaiter().GetResult()
    }
    [pscustomobject]@{
        Ping        = $ping
        Exec        = $execResult
        BootSeconds = [Math]::Round($bootSeconds, 2)
        QemuCpuSeconds = [Math]::Round($cpuSeconds, 2)
        Eval        = @($results)
        Console     = (Get-Content $consoleLog -Raw -ErrorAction SilentlyContinue)
        QemuExited  = $qemu.HasExited
    }
} catch {
    $log = Get-Content $consoleLog -Raw -ErrorAction SilentlyContinue
    if (-not $qemu.HasExited) { $qemu.Kill() }
    $qemu.WaitForExit()
    $err = $qemuErr.GetAwaiter().GetResult()
    throw "guest boot failed: $($_.Exception.Message)`nqemu: $err`nconsole:`n$log"
} finally {
    if ($client) { $client.Dispose() }
    if (-not $qemu.HasExited) { $qemu.Kill(); $qemu.WaitForExit() }
    $exited.Dispose()
    Remove-Item $dir -Recurse -Force -ErrorAction SilentlyContinue
}
