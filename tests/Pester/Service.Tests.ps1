# Start-ForkdController from the built module (out/Forkd, the installed layout) with real TCG QEMU children:
# cmdlets and REST share one store and registry, the Python client from forkd's API description drives every
# route, and stopping the controller (SIGTERM/Ctrl+C to its pwsh) drains it and leaves the children running.
Describe 'Forkd as a service' -Tag Service {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        New-ForkdSnapshot -Tag svcp -Recipe minimal -Accelerator Tcg -WarmupCode "greeting = 'from the parent'" | Out-Null

        $script:tokenFile = Join-Path $TestDrive 'token'
        $script:token = [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(32))
        Set-Content -Path $tokenFile -Value $token -NoNewline
        $script:audit = Join-Path $TestDrive 'audit.log'
        $script:headers = @{ Authorization = "Bearer $token" }

        function Start-Controller([string] $Log) {
            $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $listener.Start()
            $port = $listener.LocalEndpoint.Port; $listener.Stop()
            $proc = Start-Process env -PassThru -RedirectStandardOutput $Log -RedirectStandardError "$Log.err" -ArgumentList @('--default-signal=INT', $script:pwsh,
                '-NoProfile', '-NonInteractive', '-Command',
                "Import-Module '$env:FORKD_MODULE_PATH'; Start-ForkdController -Listen 127.0.0.1:$port -TokenFile '$script:tokenFile' -AuditLogPath '$script:audit'; 'cmdlet returned'")
            $deadline = [DateTime]::UtcNow.AddSeconds(90)
            while (-not ((Get-Content $Log -Raw -ErrorAction SilentlyContinue) -match 'listening on') -and -not $proc.HasExited -and [DateTime]::UtcNow -lt $deadline) {
                Start-Sleep -Milliseconds 100
            }
            (Get-Content $Log -Raw) | Should -Match 'listening on http://127\.0\.0\.1'
            [pscustomobject]@{ Process = $proc; Url = "http://127.0.0.1:$port"; Log = $Log }
        }
        function Get-ControllerPid([int] $PwshPid) {
            # pwsh -> dotnet forkd-controller.dll (a direct child of the pwsh that env exec'd)
            Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | Where-Object {
                try { [IO.File]::ReadAllText("$($_.FullName)/cmdline").Contains('forkd-controller.dll') -and
                      ((Get-Content "$($_.FullName)/stat" -Raw) -split ' ')[3] -eq "$PwshPid" } catch { $false }
            } | ForEach-Object { [int]$_.Name }
        }
        $script:controller = Start-Controller (Join-Path $TestDrive 'controller.log')
    }
    AfterAll {
        if ($script:controller -and -not $script:controller.Process.HasExited) { $script:controller.Process.Kill($true) }
        Exit-ForkdTestEnvironment
    }

    It 'runs from the installed module folder with the token kept off every command line' {
        $controllerPid = Get-ControllerPid $controller.Process.Id
        $controllerPid | Should -Not -BeNullOrEmpty
        $argv = [IO.File]::ReadAllText("/proc/$controllerPid/cmdline")
        $argv | Should -Match ([regex]::Escape((Join-Path (Split-Path $env:FORKD_MODULE_PATH) 'controller/forkd-controller.dll')))
        $argv.Contains($token) | Should -BeFalse
        [IO.File]::ReadAllText("/proc/$($controller.Process.Id)/cmdline").Contains($token) | Should -BeFalse
        (Invoke-RestMethod "$($controller.Url)/healthz").ok | Should -BeTrue
        $denied = Invoke-WebRequest "$($controller.Url)/v1/snapshots" -SkipHttpErrorCheck
        $denied.StatusCode | Should -Be 401
        ($denied.Content | ConvertFrom-Json).error | Should -Be 'missing bearer token'
    }

    It 'drives a cmdlet-forked child over REST, and a REST-forked child with the cmdlets' {
        $cmdletChild = Invoke-ForkdFork -Tag svcp
        $listed = Invoke-RestMethod "$($controller.Url)/v1/sandboxes" -Headers $headers
        $listed.id | Should -Contain $cmdletChild.Id
        $eval = Invoke-RestMethod -Method Post "$($controller.Url)/v1/sandboxes/$($cmdletChild.Id)/eval" -Headers $headers -ContentType application/json -Body '{"code":"greeting"}'
        $eval.value | Should -Be 'from the parent'

        $rest = Invoke-RestMethod -Method Post "$($controller.Url)/v1/sandboxes" -Headers $headers -ContentType application/json -Body '{"snapshot_tag":"svcp","n":1}'
        $restChild = Get-ForkdChild | Where-Object Id -eq $rest[0].id
        $restChild.State | Should -Be 'Running'
        ($restChild | Invoke-ForkdEval -Code '7 * 6').Value | Should -Be 42
        $cmdletChild, $restChild | Stop-ForkdChild -Confirm:$false
        (Invoke-RestMethod "$($controller.Url)/v1/sandboxes" -Headers $headers) | Should -BeNullOrEmpty
        $lines = Get-Content $audit | ForEach-Object { $_ | ConvertFrom-Json }
        $lines | Where-Object { $_.method -eq 'POST' -and $_.path -eq '/v1/sandboxes' -and $_.status -eq 201 -and $_.auth -eq 'token' } | Should -Not -BeNullOrEmpty
        $lines | Where-Object status -eq 401 | Should -Not -BeNullOrEmpty
    }

    It 'on SIGTERM to its pwsh drains and exits, leaving a REST-forked child running for the next controller' {
        $rest = Invoke-RestMethod -Method Post "$($controller.Url)/v1/sandboxes" -Headers $headers -ContentType application/json -Body '{"snapshot_tag":"svcp"}'
        $controllerPid = Get-ControllerPid $controller.Process.Id
        & kill -TERM $controller.Process.Id
        $controller.Process.WaitForExit(60000) | Should -BeTrue
        Test-Path "/proc/$controllerPid" | Should -BeFalse
        Get-Content $controller.Log -Raw | Should -Match 'children keep running'
        (Get-ForkdChild | Where-Object Id -eq $rest[0].id).State | Should -Be 'Running'

        $script:controller = Start-Controller (Join-Path $TestDrive 'controller2.log')
        $again = Invoke-RestMethod -Method Post "$($controller.Url)/v1/sandboxes/$($rest[0].id)/eval" -Headers $headers -ContentType application/json -Body '{"code":"greeting"}'
        $again.value | Should -Be 'from the parent'
        Invoke-RestMethod -Method Delete "$($controller.Url)/v1/sandboxes/$($rest[0].id)" -Headers $headers | Out-Null
        Get-ForkdChild | Should -BeNullOrEmpty
    }

    It 'Start-ForkdMcpServer speaks MCP on the stdio of its pwsh: initialize, tools/list, a tool call' {
        $start = [Diagnostics.ProcessStartInfo]::new($pwsh)
        foreach ($a in '-NoProfile', '-NonInteractive', '-Command', "Import-Module '$env:FORKD_MODULE_PATH'; Start-ForkdMcpServer") { $start.ArgumentList.Add($a) }
        $start.RedirectStandardInput = $true; $start.RedirectStandardOutput = $true; $start.RedirectStandardError = $true
        $mcp = [Diagnostics.Process]::Start($start)
        $stderr = $mcp.StandardError.ReadToEndAsync()
        try {
            $send = { param($o) $mcp.StandardInput.WriteLine(($o | ConvertTo-Json -Compress -Depth 10)); $mcp.StandardInput.Flush() }
            $read = {
                param([int] $Id)
                while ($true) {
                    $task = $mcp.StandardOutput.ReadLineAsync()
                    if (-not $task.Wait(60000)) { throw "no MCP reply $Id" }
                    if ($null -eq $task.Result) { throw "MCP server closed stdout: $($stderr.Result)" }
                    $m = $task.Result | ConvertFrom-Json
                    if ($m.id -eq $Id) { return $m }
                }
            }
            & $send @{ jsonrpc = '2.0'; id = 1; method = 'initialize'; params = @{ protocolVersion = '2025-06-18'; capabilities = @{}; clientInfo = @{ name = 'pester'; version = '1' } } }
            (& $read 1).result.serverInfo.name | Should -Be 'forkd'
            & $send @{ jsonrpc = '2.0'; method = 'notifications/initialized' }
            & $send @{ jsonrpc = '2.0'; id = 2; method = 'tools/list' }
            (& $read 2).result.tools.name | Sort-Object | Should -Be @('branch', 'eval', 'exec', 'fork', 'list_sandboxes', 'list_snapshots', 'ping', 'stop')
            & $send @{ jsonrpc = '2.0'; id = 3; method = 'tools/call'; params = @{ name = 'list_snapshots'; arguments = @{} } }
            ((& $read 3).result.content[0].text | ConvertFrom-Json).tag | Should -Contain 'svcp'
            $mcp.StandardInput.Close() # the client leaves: the server ends, and so does the cmdlet
            $mcp.WaitForExit(30000) | Should -BeTrue
        } finally {
            if (-not $mcp.HasExited) { $mcp.Kill($true) }
        }
    }

    It 'passes the Python client, written from the API description, over every route (then deletes the snapshot)' {
        $out = & python3 (Join-Path $PSScriptRoot '../service/exercise.py') $controller.Url $tokenFile svcp --delete 2>&1
        $out | ForEach-Object { Write-Host "  $_" }
        $LASTEXITCODE | Should -Be 0
        ($out | Select-Object -Last 1) | Should -Match '^\d+ passed, 0 failed$'
        Get-ForkdSnapshot | Where-Object Tag -eq svcp | Should -BeNullOrEmpty
    }

    It 'refuses weak settings at start with stable ErrorIds' {
        $weak = Join-Path $TestDrive 'weak'; Set-Content $weak 'REPLACE_ME_with_a_real_token' -NoNewline
        { Start-ForkdController -Listen 127.0.0.1:0 -TokenFile $weak -ErrorAction Stop } | Should -Throw -ErrorId 'TokenPlaceholder,*'
        { Start-ForkdController -Listen 0.0.0.0:0 -ErrorAction Stop } | Should -Throw -ErrorId 'UnauthenticatedNonLoopbackBind,*'
        { Start-ForkdController -Listen 127.0.0.1:0 -CertificatePath $weak -ErrorAction Stop } | Should -Throw -ErrorId 'TlsPairIncomplete,*'
    }
}
