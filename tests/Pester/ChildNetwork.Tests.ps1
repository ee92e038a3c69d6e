# Initialize-ForkdNetwork / Remove-ForkdNetwork on the real host network stack (root, iproute2, nftables).
# Traffic stays inside what the test creates: a listener on the bridge address 10.43.0.1, reached from a namespace.
Describe 'Initialize-ForkdNetwork and Remove-ForkdNetwork' -Tag Network {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        $script:canRun = ((& id -u) -eq '0') -and (Get-Command nft -ErrorAction SilentlyContinue) -and (Get-Command ip -ErrorAction SilentlyContinue)
        $script:skipWhy = 'needs root, iproute2 and nftables (tools/install-deps.sh)'
        $script:forward = Get-Content /proc/sys/net/ipv4/ip_forward
        function script:NsAddr([string] $ns, [string] $dev) {
            (& ip -n $ns -j addr show dev $dev | ConvertFrom-Json).addr_info | Where-Object family -eq inet | ForEach-Object { "$($_.local)/$($_.prefixlen)" }
        }
    }
    AfterAll {
        if ($script:canRun) {
            Remove-ForkdNetwork -Confirm:$false -ErrorAction SilentlyContinue
            foreach ($ns in 'forkd-child-1x', 'forkd-childX', 'forkd-child-01') { & ip netns delete $ns 2>$null }
            foreach ($link in 'forkd-br0x', 'forkd-v-1hx') { & ip link delete $link 2>$null }
            & nft delete table ip forkdx 2>$null
            [System.IO.File]::WriteAllText("/proc/sys/net/ipv4/ip_forward", "$($script:forward)`n")
        }
        $env:FORKD_DATA_DIR = $script:savedData
    }

    It 'creates one namespace per child with the guest gateway tap, its own bridge address and SNAT' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        $nets = Initialize-ForkdNetwork -Count 3
        $nets.Namespace | Should -Be @('forkd-child-1', 'forkd-child-2', 'forkd-child-3')
        $nets | ForEach-Object { $_ | Should -BeOfType ([Forkd.Core.Host.ChildNetwork]) }
        $namespaces = (& ip -j netns list | ConvertFrom-Json).name
        foreach ($i in 1..3) {
            $ns = "forkd-child-$i"
            $namespaces | Should -Contain $ns
            NsAddr $ns forkd-tap0 | Should -Be '10.42.0.1/24'
            NsAddr $ns veth0 | Should -Be "10.43.0.$($i + 1)/16"
            (& ip netns exec $ns nft list table ip forkd-nat) -join "`n" | Should -Match "snat to 10\.43\.0\.$($i + 1)"
            (& ip -j link show "forkd-v-${i}h" | ConvertFrom-Json).master | Should -Be 'forkd-br0'
        }
        $br = (& ip -j addr show dev forkd-br0 | ConvertFrom-Json).addr_info | Where-Object family -eq inet
        "$($br.local)/$($br.prefixlen)" | Should -Be '10.43.0.1/16'
    }

    It 'is idempotent: running it again changes nothing and succeeds' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        $again = Initialize-ForkdNetwork -Count 3 -ErrorAction Stop
        $again.ChildAddress.IPAddressToString | Should -Be @('10.43.0.2', '10.43.0.3', '10.43.0.4')
        @((& ip -j netns list | ConvertFrom-Json).name | Where-Object { $_ -like 'forkd-child-*' }).Count | Should -Be 3
        @(& ip -n forkd-child-2 -j addr show dev veth0 | ConvertFrom-Json).Count | Should -Be 1
    }

    It 'lets a namespace reach a server on the host side of the bridge, from its own address' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        $listener = [System.Net.Sockets.TcpListener]::new([ipaddress]'10.43.0.1', 0)
        $listener.Start()
        try {
            $port = $listener.LocalEndpoint.Port
            $accept = $listener.AcceptTcpClientAsync()
            $job = Start-ThreadJob { & ip netns exec forkd-child-2 bash -c "exec 3<>/dev/tcp/10.43.0.1/$using:port; echo hello-from-child-2 >&3; exec 3>&-" }
            $accept.Wait(10000) | Should -BeTrue
            $client = $accept.Result
            $client.Client.RemoteEndPoint.Address.IPAddressToString | Should -Be '10.43.0.3'
            [System.IO.StreamReader]::new($client.GetStream()).ReadLine() | Should -Be 'hello-from-child-2'
            $client.Dispose()
            $job | Wait-Job -Timeout 10 | Remove-Job -Force
        } finally {
            $listener.Stop()
        }
    }

    It '-WhatIf removes nothing' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        Remove-ForkdNetwork -WhatIf
        @((& ip -j netns list | ConvertFrom-Json).name | Where-Object { $_ -like 'forkd-child-*' }).Count | Should -Be 3
    }

    It 'refuses to remove a namespace that still has a process in it' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        $sleeper = Start-Process ip -ArgumentList 'netns', 'exec', 'forkd-child-1', 'sleep', '60' -PassThru
        try {
            Start-Sleep -Milliseconds 300
            Remove-ForkdNetwork -Index 1 -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
            $err[0].FullyQualifiedErrorId | Should -Match '^NetworkNamespaceInUse'
            $err[0].CategoryInfo.Category | Should -Be 'ResourceBusy'
            (& ip -j netns list | ConvertFrom-Json).name | Should -Contain 'forkd-child-1'
            (& ip -j link show forkd-v-1h | ConvertFrom-Json).master | Should -Be 'forkd-br0' -Because 'the running child keeps its veth'
            # Removing everything keeps the bridge and NAT table while a namespace is still in use.
            Remove-ForkdNetwork -Index 2 -Confirm:$false
            Remove-ForkdNetwork -Confirm:$false -ErrorVariable err2 -ErrorAction SilentlyContinue
            ($err2 | ForEach-Object FullyQualifiedErrorId) -join ' ' | Should -Match 'NetworkInUse'
            & ip link show forkd-br0 | Should -Not -BeNullOrEmpty
        } finally {
            Stop-Process -Id $sleeper.Id -Force
            $sleeper.WaitForExit()
        }
    }

    It 'removes only what matches forkd''s names exactly; look-alike namespaces, links and tables survive' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because $script:skipWhy; return }
        Initialize-ForkdNetwork -Count 3 | Out-Null
        foreach ($ns in 'forkd-child-1x', 'forkd-childX', 'forkd-child-01') { & ip netns add $ns }
        & ip link add forkd-br0x type bridge
        & ip link add forkd-v-1hx type veth peer name forkd-v-1hy
        & nft add table ip forkdx
        $removed = Remove-ForkdNetwork -Confirm:$false -PassThru
        $removed.Name | Should -Be @('forkd-child-1', 'forkd-child-2', 'forkd-child-3', 'forkd-br0', 'ip forkd')
        foreach ($i in 1..3) { & ip link show "forkd-v-${i}h" 2>$null; $LASTEXITCODE | Should -Not -Be 0 }
        $left = (& ip -j netns list | ConvertFrom-Json).name
        $left | Should -Contain 'forkd-child-1x'
        $left | Should -Contain 'forkd-childX'
        $left | Should -Contain 'forkd-child-01'
        $left | Where-Object { $_ -match '^forkd-child-\d+$' -and $_ -ne 'forkd-child-01' } | Should -BeNullOrEmpty
        & ip link show forkd-br0x | Should -Not -BeNullOrEmpty
        & ip link show forkd-v-1hx | Should -Not -BeNullOrEmpty
        & ip link show forkd-br0 2>$null; $LASTEXITCODE | Should -Not -Be 0
        & nft list table ip forkdx | Should -Not -BeNullOrEmpty
        & nft list table ip forkd 2>$null; $LASTEXITCODE | Should -Not -Be 0
    }
}

# Children on networks with real QEMU (TCG) guests: the same guest IP in every child, each reached in its own namespace.
# Traffic only goes to the guests inside the test's namespaces and to a server on the bridge address 10.43.0.1.
Describe 'Invoke-ForkdFork -Network' -Tag Network {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedCache = $env:FORKD_CACHE_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        $script:canRun = ((& id -u) -eq '0') -and (Get-Command nft -ErrorAction SilentlyContinue)
        $script:forward = Get-Content /proc/sys/net/ipv4/ip_forward
        if ($script:canRun) {
            Initialize-ForkdNetwork -Count 2 | Out-Null
            $script:snapshot = New-ForkdSnapshot -Tag net -Recipe minimal -Network -WarmupCode "marker = 'parent'"
            $script:children = @(Invoke-ForkdFork -Tag net -Count 2 -Network)
        }
    }
    AfterAll {
        Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        if ($script:canRun) {
            Remove-ForkdNetwork -Confirm:$false -ErrorAction SilentlyContinue
            [System.IO.File]::WriteAllText('/proc/sys/net/ipv4/ip_forward', "$($script:forward)`n")
        }
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'puts each child in its own namespace, all with the parent''s guest address' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because 'needs root and nftables'; return }
        $children.Count | Should -Be 2
        ($children.NetworkNamespace | Sort-Object) | Should -Be @('forkd-child-1', 'forkd-child-2')
        foreach ($c in $children) {
            $c.NetworkAgent.Transport | Should -Be 'tcp'
            $c.NetworkAgent.Address | Should -Be '10.42.0.2'
            $c.NetworkAgent.NetworkNamespace | Should -Be $c.NetworkNamespace
            # The VMM process really runs inside that namespace.
            (Get-Item "/proc/$($c.ProcessId)/ns/net").LinkTarget | Should -Be (& ip netns exec $c.NetworkNamespace readlink /proc/self/ns/net)
            $addr = ($c | Invoke-ForkdExec -Command 'ip', '-4', '-o', 'addr', 'show', 'eth0' -ViaNetwork).Stdout
            $addr | Should -Match 'inet 10\.42\.0\.2/24'
        }
    }

    It 'reaches each child over TCP in its own namespace, and only that child' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because 'needs root and nftables'; return }
        # Mark each child through its VMM channel, then read the mark back over its network.
        foreach ($c in $children) { ($c | Invoke-ForkdEval -Code "globals().update(marker='$($c.Id)')").Error | Should -BeNullOrEmpty }
        foreach ($c in $children) {
            $r = $c | Invoke-ForkdEval -Code 'marker' -ViaNetwork
            $r.Error | Should -BeNullOrEmpty
            $r.Value | Should -Be $c.Id
        }
        (@($children | Test-ForkdAgent -ViaNetwork).Responding) | Should -Be @($true, $true)
    }

    It 'lets a child reach a server on the host side of the bridge, NATed to its own address' {
        if (-not $script:canRun) { Set-ItResult -Skipped -Because 'needs root and nftables'; return }
        $listener = [System.Net.Sockets.TcpListener]::new([ipaddress]'10.43.0.1', 0)
        $listener.Start()
        try {
            $port = $listener.LocalEndpoint.Port
            $server = Start-ThreadJob -ArgumentList $listener {
                param($l)
                $client = $l.AcceptTcpClient()
                $stream = $client.GetStream()
                $reader = [System.IO.StreamReader]::new($stream)
                $request = $reader.ReadLine()
                $body = [Text.Encoding]::ASCII.GetBytes("HTTP/1.0 200 OK`r`nContent-Length: 15`r`n`r`nhello-from-host")
                $stream.Write($body, 0, $body.Length)
                $from = $client.Client.RemoteEndPoint.Address.IPAddressToString
                $client.Dispose()
                [pscustomobject]@{ Request = $request; From = $from }
            }
            $child = $children | Where-Object NetworkNamespace -eq 'forkd-child-2'
            $code = "import socket; s = socket.create_connection(('10.43.0.1', $port), 10); s.sendall(b'GET /hello HTTP/1.0\r\n\r\n'); print(s.recv(4096).decode().split('\r\n\r\n')[1])"
            $r = $child | Invoke-ForkdExec -Command 'python3', '-c', $code -TimeoutSec 30
            $r.Stdout.Trim() | Should -Be 'hello-from-host'
            $seen = $server | Wait-Job -Timeout 30 | Receive-Job
            $seen.Request | Should -Be 'GET /hello HTTP/1.0'
            $seen.From | Should -Be '10.43.0.3' -Because 'forkd-child-2 leaves its namespace as its own bridge address'
        } finally {
            $listener.Stop()
            Get-Job | Remove-Job -Force
        }
    }
}
