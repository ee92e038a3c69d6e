# Cmdlet conventions that need no VM (issue 11): -WhatIf makes the checks a real run makes, -PassThru on the
# Remove cmdlets, Import-ForkdPack -Path arrays, wildcards and -LiteralPath with the path as TargetObject, tab
# completion of recipes and tags, and a way to create children under the ForkdChild noun. Snapshots here are
# directories laid out like real ones (no VM boots).
BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedData = $env:FORKD_DATA_DIR
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
    function New-TestSnapshot([string] $Tag) {
        $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR "snapshots/$Tag")
        [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), [byte[]]::new(1000))
        $fs = [IO.File]::Create((Join-Path $dir 'memory.bin')); $fs.SetLength(1MB); $fs.Dispose()
    }
    function Complete([string] $Line) { (TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText }
}
AfterAll { $env:FORKD_DATA_DIR = $savedData }

Describe 'Cmdlet conventions' -Tag Conventions, Module {
    BeforeEach { New-TestSnapshot 'held'; New-TestSnapshot 'other' }
    AfterEach { Remove-Item (Join-Path $env:FORKD_DATA_DIR 'snapshots') -Recurse -Force -ErrorAction SilentlyContinue }

    It 'New-ForkdSnapshot -WhatIf over an existing tag is the SnapshotExists error, not "Create snapshot"' {
        { New-ForkdSnapshot -Tag held -Recipe minimal -WhatIf } | Should -Throw -ErrorId 'SnapshotExists*'
    }

    It 'Invoke-ForkdFork -WhatIf of a missing snapshot is SnapshotNotFound, per tag' {
        $out = 'missing' | Invoke-ForkdFork -WhatIf -ErrorVariable failures -ErrorAction SilentlyContinue
        $out | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound*'
        $failures[0].TargetObject | Should -Be 'missing'
    }

    It 'Remove-ForkdSnapshot -PassThru writes what it removed; without it nothing' {
        $removed = Remove-ForkdSnapshot -Tag held -Confirm:$false -PassThru
        $removed | Should -BeOfType ([Forkd.Core.Store.SnapshotInfo])
        $removed.Tag | Should -Be 'held'
        Remove-ForkdSnapshot -Tag other -Confirm:$false | Should -BeNullOrEmpty
        Get-ForkdSnapshot | Should -BeNullOrEmpty
    }

    It 'Import-ForkdPack -Path takes arrays and wildcards; each missing path is its own error with the path as target' {
        $dir = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'packs') -Force
        Set-Content (Join-Path $dir 'a.forkd-snapshot.tar.zst') 'not a pack'
        Set-Content (Join-Path $dir 'b.forkd-snapshot.tar.zst') 'not a pack'
        $null = Import-ForkdPack -Path (Join-Path $dir '*.tar.zst'), (Join-Path $dir 'nope.tar.zst') -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures.Count | Should -Be 3
        $targets = $failures.TargetObject | ForEach-Object { [string]$_ }
        $targets | Should -Contain (Join-Path $dir 'a.forkd-snapshot.tar.zst')
        $targets | Should -Contain (Join-Path $dir 'b.forkd-snapshot.tar.zst')
        $targets | Should -Contain (Join-Path $dir 'nope.tar.zst')
        ($failures | Where-Object { "$($_.TargetObject)" -like '*nope*' }).FullyQualifiedErrorId | Should -BeLike 'PathNotFound*'
    }

    It 'Import-ForkdPack -LiteralPath takes brackets as they are, and Get-ChildItem output binds to it' {
        $dir = New-Item -ItemType Directory -Path (Join-Path $TestDrive 'lit') -Force
        $file = Join-Path $dir 'p[1].tar.zst'
        Set-Content -LiteralPath $file 'not a pack'
        $null = Import-ForkdPack -LiteralPath $file -ErrorVariable e1 -ErrorAction SilentlyContinue
        $e1.Count | Should -Be 1
        [string]$e1[0].TargetObject | Should -Be $file
        $e1[0].FullyQualifiedErrorId | Should -Not -BeLike 'PathNotFound*'
        $null = Get-ChildItem -LiteralPath $dir | Import-ForkdPack -ErrorVariable e2 -ErrorAction SilentlyContinue
        [string]$e2[0].TargetObject | Should -Be $file
    }

    It 'tab completes recipes (Start-ForkdSandbox too), tags everywhere and nothing for unknown prefixes' {
        Complete 'Start-ForkdSandbox -Recipe min' | Should -Contain 'minimal'
        Complete 'New-ForkdSnapshot -Tag x -Recipe pyth' | Should -Contain 'python-numpy'
        foreach ($cmd in 'Get-ForkdSnapshot', 'Remove-ForkdSnapshot', 'Invoke-ForkdFork', 'Export-ForkdPack', 'Publish-ForkdPack', 'Get-ForkdChild') {
            Complete "$cmd -Tag h" | Should -Be @('held') -Because $cmd
        }
        Complete 'Get-ForkdSnapshot -Tag zz' | Should -BeNullOrEmpty
    }

    It 'Get-Command -Noun ForkdChild finds a way to create children' {
        $commands = Get-Command -Noun ForkdChild
        $commands.Name | Should -Contain 'New-ForkdChild'
        (Get-Command New-ForkdChild).ResolvedCommand.Name | Should -Be 'Invoke-ForkdFork'
    }
}
