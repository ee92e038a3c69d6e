# Default views (issue 11.6/11.7): every table column is a property you can select, and every default view fits
# 80 columns with its key columns whole. Objects come from the real store and image cache where that needs no VM,
# and are built with realistic (long) values otherwise; each is rendered as a user's terminal would.
BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedData = $env:FORKD_DATA_DIR
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'

    # The default table view of an object, as an 80-column terminal shows it.
    function Show-Default($InputObject) { ($InputObject | Out-String -Width 80) -split "`n" | ForEach-Object TrimEnd }

    # The header line's column names (the line above the dashes).
    function Get-Header([string[]] $Lines) {
        $dash = [array]::FindIndex($Lines, [Predicate[string]] { param($l) $l -match '^-+(\s+-+)*$' })
        $Lines[$dash - 1] -split '\s+' | Where-Object { $_ }
    }
}
AfterAll { $env:FORKD_DATA_DIR = $savedData }

Describe 'Default views' -Tag Conventions, Module {
    BeforeAll {
        $long = 'pyagent-numpy-2026.12' # a realistic long tag
        $childId = 'pyagent-numpy-v2-1a2b3c4d' # a child of a 16-character tag
        $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR "snapshots/$long")
        [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), [byte[]]::new(1000))
        $fs = [IO.File]::Create((Join-Path $dir 'memory.bin')); $fs.SetLength(300MB); $fs.Dispose()
        $script:cases = @(
            @{ Name = 'SnapshotInfo'; Object = { Get-ForkdSnapshot -Tag $long }; Keys = { $long, '300.0 MiB', ($_.CreatedAt.UtcDateTime.ToString('yyyy-MM-dd HH:mm') + 'Z'), $_.CreatedBy } }
            @{ Name = 'ForkdEvalResult'; Object = { [Forkd.Core.Engine.ForkdEvalResult]@{ ChildId = $childId; Value = 42; Repr = '42'; DurationMs = 1234.5 } }; Keys = { $childId, 'True', '1,234.5 ms', '42' } }
            @{ Name = 'failed ForkdEvalResult'; Object = { [Forkd.Core.Engine.ForkdEvalResult]@{ ChildId = $childId; Error = 'ZeroDivisionError: division by zero'; DurationMs = 3 } }; Keys = { $childId, 'False', '3.0 ms', 'ZeroDivisionError' } }
            @{ Name = 'ForkdExecResult'; Object = { [Forkd.Core.Engine.ForkdExecResult]@{ ChildId = $childId; Stdout = "Linux`n"; ExitCode = 127; DurationMs = 2.5 } }; Keys = { $childId, '127', 'False', '2.5 ms', 'Linux' } }
            @{ Name = 'ForkdAgentStatus'; Object = { [Forkd.Core.Engine.ForkdAgentStatus]@{ ChildId = $childId; Responding = $true; RoundTripMs = 0.8 } }; Keys = { $childId, 'True', '0.8 ms' } }
            @{ Name = 'StaleWorkDir'; Object = { [Forkd.Core.Store.StaleWorkDir]@{ Path = "/var/tmp/forkd-child-$childId-abcdef0123456789"; Kind = 'Child'; SizeBytes = 5MB; Action = 'Removed' } }; Keys = { "/var/tmp/forkd-child-$childId-abcdef0123456789", '5.0 MiB', 'Removed' } }
            @{ Name = 'PackInfo'; Object = { [Forkd.Core.Hub.PackInfo]@{ Path = "/home/someone/packs/$long.forkd-snapshot.tar.zst"; Tag = $long; PackedBytes = 80MB; UnpackedBytes = 300MB; Ratio = 3.75; Duration = [timespan]::FromSeconds(12.3) } }; Keys = { "/home/someone/packs/$long.forkd-snapshot.tar.zst", $long, '80.0 MiB', '3.8' } }
        )
        # The largest values each of these can take: the highest network index, the longest recipe and check names.
        $pack = [Forkd.Core.Hub.PackInfo]@{ Path = "/home/someone/packs/$long.forkd-snapshot.tar.zst"; Tag = $long; PackedBytes = 80MB; UnpackedBytes = 300MB; Ratio = 3.75; Duration = [timespan]::FromSeconds(12.3) }
        $script:cases += @(
            @{ Name = 'ForkdChild'; Object = { [Forkd.Core.Store.ForkdChild]@{ Id = $childId; Tag = 'pyagent-numpy-v2'; ProcessId = 4194303; Accelerator = 'Kvm'; Agent = [Forkd.Core.Store.AgentEndpoint]::new('Unix', '/tmp/x/agent.sock'); WorkDirectory = '/tmp/x'; RestoreTime = 1234.4; ReadyTime = 2345.6 } }; Keys = { $childId, '4194303', 'Running', 'Kvm', '1,234 ms', '2,346 ms' } }
            @{ Name = 'ChildNetwork'; Object = { [Forkd.Core.Host.ChildNetworks]::Describe([Forkd.Core.Host.ChildNetworks]::MaxIndex) }; Keys = { '65023', 'forkd-child-65023', 'forkd-tap0', '10.42.0.2', '10.43.255.254', 'forkd-v-65023h' } }
            @{ Name = 'SandboxResult'; Object = { [Forkd.Core.Engine.SandboxResult]@{ Recipe = 'playwright-browser'; Tag = 'run-x-1a2b3c4d'; ChildId = 'run-x-1a2b3c4d-00000000'; Command = [string[]]('node', '-v'); ExitCode = 127; Stdout = "v18.19.0`n"; SnapshotTime = [timespan]::FromSeconds(158.3); ForkTime = [timespan]::FromMilliseconds(412); CommandTime = [timespan]::FromMilliseconds(1234) } }; Keys = { 'playwright-browser', '127', '158.3 s', '412 ms', '1,234 ms', 'v18.19.0' } }
            @{ Name = 'PublishResult'; Object = { [Forkd.Core.Hub.PublishResult]@{ Tag = $long; Uri = 'https://bucket.example.net/packs/pyagent.forkd-snapshot.tar.zst'; StatusCode = 200; BytesSent = 80MB; UploadDuration = [timespan]::FromSeconds(2); MiBPerSecond = 40; Pack = $pack } }.GetNewClosure(); Keys = { $long, '200', '80.0 MiB', '40.0', 'https://bucket.example.net/packs/pyagent.forkd-snapshot.tar.zst' } }
            @{ Name = 'HostCheckResult'; Object = { [Forkd.Core.Host.HostCheckResult]::new('NetworkNamespaces', 'Warn', 'ip netns works, but forkd-br0 is missing: run Initialize-ForkdNetwork', $null) }; Keys = { 'NetworkNamespaces', 'Warn', 'Initialize-ForkdNetwork' } }
        )
        # A guest image with the longest recipe name, whether or not the cache holds real ones (added below).
        $script:cases += @{ Name = 'GuestImage (longest recipe)'; Object = { [Forkd.Core.Guest.GuestImage]@{ Recipe = 'playwright-browser'; ContentHash = 'ab' * 32; Description = 'd'; KernelFileName = 'vmlinux'; InitramfsFileName = 'initramfs.cpio'; KernelCommandLine = 'rdinit=/init'; KernelVersion = '6.1.0-28-cloud-amd64'; PythonVersion = '3.11.2'; Packages = [Forkd.Core.Guest.GuestPackage[]]@(); KernelBytes = 30MB; InitramfsBytes = 3MB; BuiltAt = [DateTimeOffset]::new(2026, 12, 1, 11, 5, 0, [TimeSpan]::Zero) } }; Keys = { 'playwright-browser', ('ab' * 6), '3.11.2', '3.0 MiB', '2026-12-01 11:05Z' } }
        $images = @(Get-ForkdImage -ErrorAction SilentlyContinue)
        if ($images) {
            $script:cases += @{ Name = 'GuestImage'; Object = { $images[0] }.GetNewClosure(); Keys = { $_.Recipe, $_.ContentHash.Substring(0, 12), $_.PythonVersion, ($_.BuiltAt.UtcDateTime.ToString('yyyy-MM-dd HH:mm') + 'Z') } }
        }
    }

    It 'renders each default view within 80 columns, keeping its key columns whole, under property names' {
        foreach ($case in $cases) {
            $object = & $case.Object
            $object | Should -Not -BeNullOrEmpty -Because $case.Name
            $lines = Show-Default $object
            foreach ($line in $lines) { $line.Length | Should -BeLessOrEqual 80 -Because "$($case.Name): '$line'" }
            $text = $lines -join "`n"
            $text | Should -Not -Match '…' -Because "$($case.Name) must not cut a key column:`n$text"
            # A long last column wraps onto the next lines: whole, though not on one line.
            $joined = $text -replace '\s', ''
            foreach ($key in ($object | ForEach-Object $case.Keys)) {
                $joined | Should -Match ([regex]::Escape((([string]$key) -replace '\s', ''))) -Because "$($case.Name) shows $key whole:`n$text"
            }
            foreach ($column in Get-Header $lines) {
                $object.PSObject.Properties.Name | Should -Contain $column -Because "$($case.Name)'s column '$column' must be a property"
            }
        }
    }

    It 'has a case above for every default view in Forkd.Format.ps1xml' {
        $format = [xml](Get-Content -Raw (Join-Path (Split-Path $env:FORKD_MODULE_PATH) 'Forkd.Format.ps1xml'))
        $covered = $cases | ForEach-Object { (& $_.Object).GetType().FullName }
        foreach ($type in $format.Configuration.ViewDefinitions.View.ViewSelectedBy.TypeName) { $covered | Should -Contain $type }
    }

    It 'durations are TimeSpans under the column name, and a missing measurement is $null, not 0' {
        $eval = [Forkd.Core.Engine.ForkdEvalResult]@{ ChildId = 'a-1'; DurationMs = 1500 }
        $eval.Duration | Should -BeOfType [timespan]
        $eval.Duration.TotalSeconds | Should -Be 1.5
        ([Forkd.Core.Engine.ForkdExecResult]@{ ChildId = 'a-1'; DurationMs = 20 }).Duration.TotalMilliseconds | Should -Be 20
        ([Forkd.Core.Engine.ForkdAgentStatus]@{ ChildId = 'a-1'; Responding = $false }).RoundTrip | Should -BeNullOrEmpty
        ($eval | Select-Object ChildId, Duration).Duration | Should -Be ([timespan]::FromMilliseconds(1500))
        # A child record without the measurements (written by an older version) has $null, not 00:00:00.
        $child = [Forkd.Core.Store.ForkdChild]@{ Id = 'a-00000001'; Tag = 'a'; Agent = [Forkd.Core.Store.AgentEndpoint]::new('Unix', '/tmp/a.sock'); WorkDirectory = '/tmp/a' }
        $child.Restore | Should -BeNullOrEmpty
        $child.Ready | Should -BeNullOrEmpty
        ($child | Out-String -Width 80) | Should -Not -Match '\b0 ms'
        # Index numbers the children of one fork call, so it is no column that looks like a unique index.
        Get-Header (Show-Default $child) | Should -Not -Contain 'Index'
    }
}
