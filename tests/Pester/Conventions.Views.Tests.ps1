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

    It 'durations are TimeSpans under the column name, and a missing measurement is $null, not 0' {
        $eval = [Forkd.Core.Engine.ForkdEvalResult]@{ ChildId = 'a-1'; DurationMs = 1500 }
        $eval.Duration | Should -BeOfType [timespan]
        $eval.Duration.TotalSeconds | Should -Be 1.5
        ([Forkd.Core.Engine.ForkdExecResult]@{ ChildId = 'a-1'; DurationMs = 20 }).Duration.TotalMilliseconds | Should -Be 20
        ([Forkd.Core.Engine.ForkdAgentStatus]@{ ChildId = 'a-1'; Responding = $false }).RoundTrip | Should -BeNullOrEmpty
        ($eval | Select-Object ChildId, Duration).Duration | Should -Be ([timespan]::FromMilliseconds(1500))
    }
}
