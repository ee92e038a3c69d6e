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

    It 'Backend and Accelerator are the enums the parameters take, on live objects and after a Clixml round trip' {
        New-TestSnapshot 'typed'
        Set-Content (Join-Path $env:FORKD_DATA_DIR 'snapshots/typed/snapshot.json') '{ "vmstate": "vmstate", "memory": "memory.bin", "backend": "qemu", "accelerator": "tcg" }'
        (Get-Command New-ForkdSnapshot).Parameters['Backend'].ParameterType | Should -Be ([Forkd.Core.BackendKind])
        $live = Get-ForkdSnapshot -Tag typed
        $live.Backend | Should -BeOfType ([Forkd.Core.BackendKind])
        $live.Accelerator | Should -BeOfType ([Forkd.Core.Accelerator])
        @(Get-ForkdSnapshot | Where-Object Accelerator -eq Tcg).Tag | Should -Be @('typed')
        @(Get-ForkdSnapshot | Where-Object Backend -eq Firecracker).Tag | Should -Be @('held', 'other') # forkd-made: no snapshot.json
        $file = Join-Path $TestDrive 'snapshots.xml'
        Get-ForkdSnapshot | Export-Clixml -LiteralPath $file
        $back = @(Import-Clixml -LiteralPath $file)
        $back.Count | Should -Be 3
        @($back | Where-Object Accelerator -eq Tcg).Tag | Should -Be @('typed')
        ($back | Where-Object Tag -eq typed).Backend | Should -BeOfType ([Forkd.Core.BackendKind])
        # snapshot.json keeps forkd's lower-case names.
        (Get-Content (Join-Path $env:FORKD_DATA_DIR 'snapshots/typed/snapshot.json') -Raw) | Should -Match '"backend": "qemu"'
    }

    It 'every enum a result object carries comes back as itself from Clixml (extended type data)' {
        $enums = Get-Command -Module Forkd | ForEach-Object { $_.OutputType.Type } | Where-Object { $_ } | Sort-Object FullName -Unique |
            ForEach-Object { $_; $_.GetProperties().PropertyType } | # the objects and, one level down, what they hold
            ForEach-Object { if ($_.IsGenericType -and $_.GetGenericTypeDefinition() -eq [Nullable`1]) { $_.GetGenericArguments()[0] } else { $_ } } |
            Where-Object { $_.Namespace -like 'Forkd.*' } | ForEach-Object { $_; $_.GetProperties().PropertyType } |
            ForEach-Object { if ($_.IsGenericType -and $_.GetGenericTypeDefinition() -eq [Nullable`1]) { $_.GetGenericArguments()[0] } else { $_ } } |
            Where-Object { $_.IsEnum -and $_.Namespace -like 'Forkd.*' } | Sort-Object FullName -Unique
        $enums.FullName | Should -Contain 'Forkd.Core.Accelerator'
        $enums.FullName | Should -Contain 'Forkd.Core.Store.ChildState'
        foreach ($enum in $enums) {
            $value = [Enum]::GetValues($enum) | Select-Object -Last 1
            $clone = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize([pscustomobject]@{ V = $value }))
            $clone.V | Should -BeOfType $enum -Because "$($enum.FullName) needs a Deserialized.$($enum.FullName) entry in Forkd.Types.ps1xml"
            $clone.V | Should -Be $value
        }
    }

    It 'tab completes network indexes from the namespaces that exist, in a /run/netns only this test sees' {
        # The completer lists `ip netns` (/run/netns), which is global to the host. A new mount namespace with its own
        # tmpfs on /run/netns holds namespaces no other process sees; they vanish with it.
        $script = Join-Path $TestDrive 'complete-netns.ps1'
        Set-Content -LiteralPath $script -Value @'
Import-Module $env:FORKD_MODULE_PATH
function Complete([string] $Line) { ((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches.CompletionText) -join ',' }
'before=' + (Complete 'Remove-ForkdNetwork -Index ')
foreach ($name in 'forkd-child-64999', 'forkd-child-7', 'forkd-child-07', 'not-ours-3') { & ip netns add $name }
'after=' + (Complete 'Remove-ForkdNetwork -Index ')
'prefix=' + (Complete 'Remove-ForkdNetwork 64')
foreach ($name in 'forkd-child-64999', 'forkd-child-7', 'forkd-child-07', 'not-ours-3') { & ip netns delete $name }
'@
        $pwsh = Join-Path $PSHOME 'pwsh'
        $out = & unshare --mount --propagation private sh -c 'mount -t tmpfs forkd-test /run/netns && exec "$0" -NoProfile -NonInteractive -File "$1"' $pwsh $script 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($out | Out-String)
        $out | Should -Contain 'before='
        # Ours only (forkd-child-07 is not a name forkd makes), in numeric order; a prefix narrows them.
        $out | Should -Contain 'after=7,64999'
        $out | Should -Contain 'prefix=64999'
        (& ip -j netns list | ConvertFrom-Json).name | Should -Not -Contain 'forkd-child-64999' -Because 'the host never saw them'
    }

    It 'errors about a path carry the path as TargetObject, and -WhatIf reports them as a real run would' {
        $missing = Join-Path $TestDrive 'no/such'
        $taken = Join-Path $TestDrive 'taken.tar.zst'
        Set-Content -LiteralPath $taken 'x'
        $cases = @(
            @{ Id = 'PackOutputDirectoryNotFound'; Target = "$missing/x.tar.zst"; Run = { Export-ForkdPack -Tag held -Path "$missing/x.tar.zst" } }
            @{ Id = 'PackOutputExists'; Target = $taken; Run = { Export-ForkdPack -Tag held -Path $taken } }
            @{ Id = 'KernelNotFound'; Target = "$missing/vmlinux"; Run = { New-ForkdSnapshot -Tag k -KernelPath "$missing/vmlinux" -WhatIf } }
            @{ Id = 'InitramfsNotFound'; Target = "$missing/initrd"; Run = { New-ForkdSnapshot -Tag k -KernelPath $taken -InitramfsPath "$missing/initrd" -WhatIf } }
            @{ Id = 'VolumeNotFound'; Target = "$missing/data.img"; Run = { New-ForkdSnapshot -Tag k -Recipe minimal -Volume "$missing/data.img:/data" -WhatIf } }
            @{ Id = 'VolumeNotFound'; Target = "$missing/data.img"; Run = { Import-ForkdPack -Path $taken -Volume "$missing/data.img:/data" -WhatIf } }
        )
        foreach ($case in $cases) {
            $err = $null
            try { $ErrorActionPreference = 'Stop'; & $case.Run | Out-Null } catch { $err = $_ } finally { $ErrorActionPreference = 'Continue' }
            $err | Should -Not -BeNullOrEmpty -Because "$($case.Id) is expected"
            $err.FullyQualifiedErrorId | Should -BeLike "$($case.Id),*"
            [string]$err.TargetObject | Should -Be $case.Target -Because $case.Id
        }
        Get-ForkdSnapshot -Tag k -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'a removed tag leaves no lock file' {
        $lock = Join-Path $env:FORKD_DATA_DIR 'locks/held.lock'
        $null = Invoke-ForkdFork -Tag held -WhatIf # checks the snapshot under the tag's shared lock
        $lock | Should -Exist
        Remove-ForkdSnapshot -Tag held -Confirm:$false
        $lock | Should -Not -Exist
        Test-Path (Join-Path $env:FORKD_DATA_DIR 'locks/other.lock') | Should -BeFalse -Because 'no operation touched that tag'
    }

    It 'tags and ids follow one case rule: exact names are case-sensitive, wildcard patterns ignore case' {
        { Get-ForkdSnapshot -Tag HELD -ErrorAction Stop } | Should -Throw -ErrorId 'SnapshotNotFound*'
        (Get-ForkdSnapshot -Tag 'HEL*').Tag | Should -Be 'held'
        { Get-ForkdChild -Id 'HELD-0123ABCD' -ErrorAction Stop } | Should -Throw -ErrorId 'ChildNotFound*'
        foreach ($page in 'Get-ForkdSnapshot', 'Get-ForkdChild') {
            (Get-Help $page -Full | Out-String) | Should -Match 'case-sensitive' -Because "$page's help states the rule"
        }
    }

    It 'Stop-ForkdChild and every Remove cmdlet take -PassThru, but the sweep, whose output is its report' {
        foreach ($cmd in @(Get-Command -Module Forkd -Verb Remove) + @(Get-Command Stop-ForkdChild, Suspend-ForkdChild, Resume-ForkdChild)) {
            if ($cmd.Name -eq 'Remove-ForkdStaleWorkDir') {
                (Get-Help $cmd.Name -Full | Out-String) | Should -Match 'no -PassThru' -Because 'its help says why'
                continue
            }
            $cmd.Parameters.Keys | Should -Contain 'PassThru' -Because $cmd.Name
        }
        # Without -PassThru a removal writes nothing; with it, what it removed.
        Remove-ForkdSnapshot -Tag other -Confirm:$false | Should -BeNullOrEmpty
        (Remove-ForkdSnapshot -Tag held -Confirm:$false -PassThru).Tag | Should -Be 'held'
    }

    It 'the help of every cmdlet that takes pipeline input says which of its errors are non-terminating' {
        foreach ($cmd in Get-Command -Module Forkd -CommandType Cmdlet) {
            $piped = $cmd.Parameters.Values | Where-Object { $_.Attributes | Where-Object { $_ -is [System.Management.Automation.ParameterAttribute] -and ($_.ValueFromPipeline -or $_.ValueFromPipelineByPropertyName) } }
            if (-not $piped) { continue }
            (Get-Help $cmd.Name -Full | Out-String -Width 200) | Should -Match 'non-terminating' -Because "$($cmd.Name) takes pipeline input"
        }
    }

    It 'Get-Command -Noun ForkdChild finds a way to create children' {
        $commands = Get-Command -Noun ForkdChild
        $commands.Name | Should -Contain 'New-ForkdChild'
        (Get-Command New-ForkdChild).ResolvedCommand.Name | Should -Be 'Invoke-ForkdFork'
    }
}

Describe 'Start-ForkdController -WhatIf' -Tag Module {
    BeforeAll { Import-Module $env:FORKD_MODULE_PATH -Force }

    It 'reports a missing token file as the error a real start gives, not as "Start the Forkd controller"' {
        $missing = Join-Path $TestDrive 'no-such-token'
        $err = $null
        try { Start-ForkdController -TokenFile $missing -WhatIf -ErrorAction Stop 6>$null } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'TokenFileUnreadable*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.TargetObject | Should -Be $missing
    }
}
