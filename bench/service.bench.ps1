#!/usr/bin/env pwsh
<#
.SYNOPSIS
    What the REST API adds: fork of one child and an eval, over REST (Start-ForkdController, HttpClient,
    bearer token) against the same through the cmdlets, interleaved in one run on one snapshot.
.DESCRIPTION
    Goals (issue 14): REST adds at most 10 % to a fork of one child and at most 2 ms to an eval.
    Each round forks one child through Invoke-ForkdFork and one through POST /v1/sandboxes (order
    alternating), then evaluates the same expression $EvalRounds times each way; the medians are compared.
    Writes bench/results/service.md and prints it. Do not run it on a loaded machine if the numbers matter:
    the host load (1-minute load average) is recorded with the result.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Recipe = 'minimal',
    [ValidateSet('Auto', 'Kvm', 'Tcg')] [string] $Accelerator = 'Tcg',
    [int] $ForkRounds = 5,
    [int] $EvalRounds = 30
)
$ErrorActionPreference = 'Stop'
$root = Split-Path $PSScriptRoot -Parent
$results = Join-Path $PSScriptRoot 'results'
New-Item -ItemType Directory -Force $results | Out-Null
Import-Module (Resolve-Path $ModulePath).Path -Force
$env:FORKD_DATA_DIR = Join-Path ([IO.Path]::GetTempPath()) "forkd-bench-service-$PID"
if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = Join-Path $root '.cache' }

function Get-Median([double[]] $Values) {
    $s = $Values | Sort-Object
    if ($s.Count % 2) { $s[[int][math]::Floor($s.Count / 2)] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 }
}

$tag = 'svcbench'
$code = 'sum(i * i for i in range(1000))'
$tokenFile = Join-Path $env:FORKD_DATA_DIR 'token'
$controller = $null
try {
    Write-Host '==> snapshot'
    $snap = New-ForkdSnapshot -Tag $tag -Recipe $Recipe -Accelerator $Accelerator -WarmupCode "warm = True"
    New-Item -ItemType Directory -Force (Split-Path $tokenFile) | Out-Null
    $token = [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(32))
    Set-Content $tokenFile $token -NoNewline

    Write-Host '==> controller'
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $listener.Start()
    $port = $listener.LocalEndpoint.Port; $listener.Stop()
    $log = Join-Path $env:FORKD_DATA_DIR 'controller.log'
    $controller = Start-Process (Join-Path $PSHOME 'pwsh') -PassThru -RedirectStandardOutput $log -ArgumentList @('-NoProfile', '-NonInteractive', '-Command',
        "Import-Module '$((Resolve-Path $ModulePath).Path)'; Start-ForkdController -Listen 127.0.0.1:$port -TokenFile '$tokenFile'")
    $deadline = [DateTime]::UtcNow.AddSeconds(90)
    while (-not ((Get-Content $log -Raw -ErrorAction SilentlyContinue) -match 'listening on') -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    $http = [Net.Http.HttpClient]::new(); $http.BaseAddress = [Uri]"http://127.0.0.1:$port"; $http.Timeout = [TimeSpan]::FromMinutes(5)
    $http.DefaultRequestHeaders.Authorization = [Net.Http.Headers.AuthenticationHeaderValue]::new('Bearer', $token)
    function Invoke-Api([string] $Method, [string] $Path, [string] $Body) {
        $request = [Net.Http.HttpRequestMessage]::new([Net.Http.HttpMethod]::new($Method), $Path)
        if ($Body) { $request.Content = [Net.Http.StringContent]::new($Body, [Text.Encoding]::UTF8, 'application/json') }
        $response = $http.SendAsync($request).GetAwaiter().GetResult()
        $text = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
        if (-not $response.IsSuccessStatusCode) { throw "$Method $Path -> $([int]$response.StatusCode) $text" }
        if ($text) { $text | ConvertFrom-Json -NoEnumerate }
    }
    Invoke-Api GET '/v1/snapshots' | Out-Null # warm the connection and the JIT

    Write-Host "==> fork one child, $ForkRounds rounds each way"
    $cmdletFork = [Collections.Generic.List[double]]::new(); $restFork = [Collections.Generic.List[double]]::new()
    foreach ($round in 1..$ForkRounds) {
        foreach ($way in @(if ($round % 2) { 'cmdlet', 'rest' } else { 'rest', 'cmdlet' })) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            if ($way -eq 'cmdlet') { $child = Invoke-ForkdFork -Tag $tag; $id = $child.Id }
            else { $id = (Invoke-Api POST '/v1/sandboxes' "{""snapshot_tag"":""$tag"",""n"":1}")[0].id }
            $ms = $sw.Elapsed.TotalMilliseconds
            if ($way -eq 'cmdlet') { $cmdletFork.Add($ms) } else { $restFork.Add($ms) }
            Write-Host ("    round {0} {1,-6}: {2:N0} ms" -f $round, $way, $ms)
            Stop-ForkdChild -Id $id -Confirm:$false
        }
    }

    Write-Host "==> eval, $EvalRounds rounds each way on one child"
    $child = Invoke-ForkdFork -Tag $tag
    $body = (@{ code = $code } | ConvertTo-Json -Compress)
    foreach ($i in 1..3) { $child | Invoke-ForkdEval -Code $code | Out-Null; Invoke-Api POST "/v1/sandboxes/$($child.Id)/eval" $body | Out-Null }
    $cmdletEval = [Collections.Generic.List[double]]::new(); $restEval = [Collections.Generic.List[double]]::new()
    foreach ($i in 1..$EvalRounds) {
        $sw = [Diagnostics.Stopwatch]::StartNew(); $r = $child | Invoke-ForkdEval -Code $code; $cmdletEval.Add($sw.Elapsed.TotalMilliseconds)
        if ($r.Value -ne 332833500) { throw "cmdlet eval returned $($r.Value)" }
        $sw = [Diagnostics.Stopwatch]::StartNew(); $r = Invoke-Api POST "/v1/sandboxes/$($child.Id)/eval" $body; $restEval.Add($sw.Elapsed.TotalMilliseconds)
        if ($r.result -ne '332833500') { throw "REST eval returned $($r.result)" }
    }
    Stop-ForkdChild -Id $child.Id -Confirm:$false

    $cf = Get-Median $cmdletFork; $rf = Get-Median $restFork; $ce = Get-Median $cmdletEval; $re = Get-Median $restEval
    $forkAdded = ($rf - $cf) / $cf * 100
    $evalAdded = $re - $ce
    $load = (Get-Content /proc/loadavg -Raw).Split(' ')[0]
    $cpu = ((Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -split ':\s*', 2)[1]
    $table = @"
### REST vs cmdlets (recipe $Recipe, $("$($snap.Accelerator)".ToUpperInvariant()), $($snap.MemoryMiB) MiB guest RAM)

Host: $([Environment]::ProcessorCount) CPUs ($cpu), 1-minute load average **$load** when the run ended. One run of ``bench/service.bench.ps1``, $([DateTime]::UtcNow.ToString('yyyy-MM-dd HH:mm')) UTC.

| Measure | cmdlet | REST | REST adds | Goal | |
|---|---:|---:|---:|---|---|
| Fork 1 child, agent replying (median of $ForkRounds) | $('{0:N0}' -f $cf) ms | $('{0:N0}' -f $rf) ms | $('{0:N1}' -f $forkAdded) % | ≤ 10 % | $(if ($forkAdded -le 10) { 'met' } else { 'NOT met' }) |
| ``eval`` round trip (median of $EvalRounds) | $('{0:N2}' -f $ce) ms | $('{0:N2}' -f $re) ms | $('{0:N2}' -f $evalAdded) ms | ≤ 2 ms | $(if ($evalAdded -le 2) { 'met' } else { 'NOT met' }) |

REST is timed at the client (HttpClient in the benchmark's pwsh, bearer token, loopback, JSON both ways); the
cmdlet is timed around the cmdlet call in the same session.
"@
    Set-Content (Join-Path $results 'service.md') $table
    Write-Host ''
    Write-Host $table
} finally {
    if ($controller -and -not $controller.HasExited) { & kill -TERM $controller.Id; $controller.WaitForExit(30000) | Out-Null }
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    Remove-ForkdSnapshot -Tag $tag -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item $env:FORKD_DATA_DIR -Recurse -Force -ErrorAction SilentlyContinue
}
