# The Markdown report of fork.bench.ps1 from its measurements (one run).
param($Data, [string] $Recipe, [int] $ColdBoots, [int] $IdleSeconds, [string] $Code)
$goal = { param($ok) if ($ok) { 'met' } else { 'NOT met' } }
$f = $Data.fork; $m = $Data.memory; $g = $Data.guest_mib
$cpu = (Get-Content /proc/cpuinfo | Select-String '^model name\s*:\s*(.+)$' | Select-Object -First 1).Matches.Groups[1].Value
$qemu = (& qemu-system-x86_64 --version | Select-Object -First 1) -replace '^QEMU emulator version ', ''
$stageRows = foreach ($name in 'VmmStart', 'ControlConnect', 'StateLoad', 'Resume', 'AgentReady', 'Engine', 'Ready') {
    "| $name | $(($Data.stages.Keys | ForEach-Object { '{0:N1}' -f $Data.stages[$_][$name] }) -join ' | ') |"
}
$ratio = $Data.fork4_busy / $Data.fork4_empty
@"
## Fork-from-warm benchmark ($($Data.accel), recipe $Recipe, $g MiB guest RAM)

Host: $([Environment]::ProcessorCount) CPUs ($cpu), QEMU $qemu, accelerator **$($Data.accel)**. One run of ``bench/fork.bench.ps1``, $(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC. Every start is cold (no pre-started VMM).

| Measure | Result |
|---|---:|
| Cold boot to first agent reply (median of $ColdBoots) | $('{0:N0}' -f $Data.cold) ms |
$(($f.Keys | ForEach-Object { "| Fork $_ $(if ($_ -eq '1') { 'child' } else { 'children' }), all agents replying$(if ([int]$_ -le 16) { ' (median of 3)' }) | $('{0:N0}' -f $f[$_]) ms |" }) -join "`n")
| Marginal child, (T16 − T1) / 15 | $('{0:N1}' -f $Data.marginal) ms |
| Marginal child at 100, (T100 − T1) / 99 | $('{0:N1}' -f $Data.marginal_100) ms |
| 100 children forked and each answered its first eval | $('{0:N0}' -f $Data.first_eval_100) ms |
| Idle child (of 100, $IdleSeconds s): CPU | $('{0:N3}' -f $Data.idle.CorePercent) % of a core |
| Idle child (of 100): VMM wake-ups (context switches of all its threads) | $('{0:N1}' -f $Data.idle.WakeupsPerSecond) /s |
| Host memory used by 100 idle children (MemAvailable before − with them) | $('{0:N0}' -f $Data.host_mib_100) MiB |
| Idle child (of 16): private pages in the guest-RAM mapping | $('{0:N2}' -f $m['guest RAM private']) MiB ($('{0:P2}' -f ($m['guest RAM private'] / $g)) of guest RAM) |
| Idle child (of 16): VMM overhead private (process private − guest RAM) | $('{0:N2}' -f $m['VMM overhead private']) MiB |
| Idle child (of 16): whole VMM process private | $('{0:N2}' -f $m['process private']) MiB |
| Idle child (of 16): whole VMM process PSS | $('{0:N2}' -f $m['process PSS']) MiB |
| Fork 4 on the empty machine, just before the 100 (median of 7) | $('{0:N0}' -f $Data.fork4_empty) ms |
| Fork 4 while 100 idle children run (median of 7) | $('{0:N0}' -f $Data.fork4_busy) ms |
| ``eval`` round trip, ``$Code`` (median of 30) | $('{0:N2}' -f $Data.eval_ms) ms |
| ``exec`` of ``python3 -c`` for the same expression (median of 5) | $('{0:N0}' -f $Data.exec_ms) ms |

Start stages, median ms per child ($(($Data.stages.Keys | ForEach-Object { "N = $_" }) -join ', ')):

| Stage | $(($Data.stages.Keys | ForEach-Object { "N = $_" }) -join ' | ') |
|---|$(($Data.stages.Keys | ForEach-Object { '---:' }) -join '|')|
$($stageRows -join "`n")

| Goal | Figure | |
|---|---:|---|
| One child ready ≥ 20× sooner than a cold boot | $('{0:N1}' -f ($Data.cold / $f['1']))× | $(& $goal (($Data.cold / $f['1']) -ge 20)) |
| An idle child costs ≤ 0.2 % of a core | $('{0:N3}' -f $Data.idle.CorePercent) % | $(& $goal ($Data.idle.CorePercent -le 0.2)) |
| Marginal child ≤ 40 ms | $('{0:N1}' -f $Data.marginal) ms | $(& $goal ($Data.marginal -le 40)) |
| 100 children forked and answering their first eval within 10 s | $('{0:N1}' -f ($Data.first_eval_100 / 1000)) s | $(& $goal ($Data.first_eval_100 -le 10000)) |
| Idle child's whole VMM process ≤ 12 MiB private | $('{0:N2}' -f $m['process private']) MiB | $(& $goal ($m['process private'] -le 12)) |
| Fork beside 100 idle children ≤ 1.2× the fork on an empty machine | $('{0:N2}' -f $ratio)× | $(& $goal ($ratio -le 1.2)) |
| ``eval`` ≥ 20× faster than ``exec`` | $('{0:N0}' -f ($Data.exec_ms / $Data.eval_ms))× | $(& $goal (($Data.exec_ms / $Data.eval_ms) -ge 20)) |
"@
