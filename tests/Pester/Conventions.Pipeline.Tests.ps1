# PowerShell conventions with real children (issue 11): result objects pipe back into every cmdlet that takes
# a child or a tag, -Id takes wildcards, one bad pipeline item does not stop the rest, guest failures are error
# records, and tab completion offers live tags and ids. One snapshot of the minimal recipe, two children.
Describe 'Conventions with real children' -Tag Conventions, ConventionsVm {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        $script:snapshot = New-ForkdSnapshot -Tag cpy -Recipe minimal -WarmupCode 'base = 41'
        $script:children = @(Invoke-ForkdFork -Tag cpy -Count 2)
        $script:pwsh = Join-Path $PSHOME 'pwsh'
        # Runs a script in a fresh pwsh with the module and this data dir: what a runbook sees (exit code, output).
        function Invoke-Runbook([string] $Script) {
            $output = & $script:pwsh -NoProfile -NonInteractive -Command "Import-Module '$env:FORKD_MODULE_PATH'; $Script" 2>&1
            [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($output | Out-String) }
        }
    }
    AfterAll {
        Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        $env:FORKD_DATA_DIR = $script:savedData
    }

    It 'Get-ForkdChild | Invoke-ForkdEval | Where-Object { -not $_.Succeeded } | Stop-ForkdChild stops exactly the failing child' {
        $a, $b = $children
        # One child fails its eval: give it a flag the other does not have.
        Invoke-ForkdEval -Id $a.Id -Code "globals().__setitem__('broken', True)" -Confirm:$false | Out-Null
        $code = "1/0 if globals().get('broken') else 1"
        $stopped = @(Get-ForkdChild | Invoke-ForkdEval -Code $code -NoGuestError -Confirm:$false |
            Where-Object { -not $_.Succeeded } | Stop-ForkdChild -Confirm:$false -PassThru)
        $stopped.Id | Should -Be @($a.Id)
        Get-ForkdChild -Id $a.Id -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        (Get-ForkdChild -Id $b.Id).State | Should -Be 'Running'
        $script:children = @($b) + @(Invoke-ForkdFork -Tag cpy -Count 1)
    }

    It 'exec, agent and eval results pipe into every child cmdlet by ChildId, never by ToString' {
        $id = $children[0].Id
        $exec = Invoke-ForkdExec -Id $id -Command 'true' -Confirm:$false
        ($exec | Get-ForkdChild).Id | Should -Be $id
        ($exec | Test-ForkdAgent).ChildId | Should -Be $id
        ($exec | Invoke-ForkdEval -Code 'base + 1' -Confirm:$false).Value | Should -Be 42
        $status = Test-ForkdAgent -Id $id
        ($status | Invoke-ForkdExec -Command 'true' -Confirm:$false).ChildId | Should -Be $id
        # A deserialized result (another session, a job) still carries the name, not the type.
        $clone = [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($exec))
        ($clone | Get-ForkdChild).Id | Should -Be $id
    }

    It '-Id takes arrays and wildcards' {
        @(Get-ForkdChild -Id 'cpy-*').Count | Should -Be 2
        @(Get-ForkdChild -Id 'CPY-*').Count | Should -Be 2
        @(Test-ForkdAgent -Id $children.Id).Count | Should -Be 2
        @(Test-ForkdAgent -Id 'cpy-*').Responding | Should -Be @($true, $true)
        Get-ForkdChild -Id 'nomatch-*' | Should -BeNullOrEmpty
        { Get-ForkdChild -Id 'cpy-00000000' -ErrorAction Stop } | Should -Throw -ErrorId 'ChildNotFound*'
    }

    It 'snapshot objects and children bind to -Tag' {
        (Get-ForkdSnapshot -Tag cpy | Get-ForkdChild).Count | Should -Be 2
        (Get-ForkdChild | Select-Object -First 1 | Get-ForkdSnapshot).Tag | Should -Be 'cpy'
        # A child piped back is that child (by Id), not every child of its tag.
        (Get-ForkdChild -Id $children[0].Id | Get-ForkdChild).Id | Should -Be $children[0].Id
        @(Get-ForkdChild | Get-ForkdChild).Count | Should -Be 2
    }

    It 'children carry Backend and Accelerator as enums that Where-Object and a Clixml round trip keep' {
        $accelerator = $snapshot.Accelerator
        $accelerator | Should -BeOfType ([Forkd.Core.Accelerator])
        (Get-ForkdChild)[0].Accelerator | Should -BeOfType ([Forkd.Core.Accelerator])
        (Get-ForkdChild)[0].Backend | Should -BeOfType ([Forkd.Core.BackendKind])
        @(Get-ForkdChild | Where-Object Backend -eq Qemu).Count | Should -Be 2
        @(Get-ForkdChild | Where-Object Accelerator -eq "$accelerator").Count | Should -Be 2
        $file = Join-Path $TestDrive 'children.xml'
        Get-ForkdChild | Export-Clixml -LiteralPath $file
        $back = @(Import-Clixml -LiteralPath $file)
        @($back | Where-Object Accelerator -eq "$accelerator").Count | Should -Be 2
        @($back | Where-Object State -eq Running).Count | Should -Be 2
        @($back | Test-ForkdAgent).Responding | Should -Be @($true, $true) # deserialized children pipe by Id
        @($back | Get-ForkdChild).Id | Should -Be @($back.Id)
        # The registry keeps forkd's lower-case names.
        Get-Content -Raw (Join-Path $env:FORKD_DATA_DIR "children/$($children[0].Id).json") | Should -Match '"backend": "qemu"'
    }

    It "'nope','cpy' | Invoke-ForkdFork forks cpy and writes a non-terminating error for nope" {
        $forked = @('nope', 'cpy' | Invoke-ForkdFork -ErrorVariable failures -ErrorAction SilentlyContinue)
        $forked.Count | Should -Be 1
        $forked[0].Tag | Should -Be 'cpy'
        $failures.Count | Should -Be 1
        $failures[0].TargetObject | Should -Be 'nope'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $forked | Stop-ForkdChild -Confirm:$false
        # SilentlyContinue silences it: nothing reaches the error stream of a runbook.
        $r = Invoke-Runbook ("`$env:FORKD_DATA_DIR='$env:FORKD_DATA_DIR'; " +
            "'nope', 'cpy' | Invoke-ForkdFork -ErrorAction SilentlyContinue | ForEach-Object { 'forked ' + `$_.Tag; `$_ | Stop-ForkdChild -Confirm:`$false }; 'done'")
        ($r.Output.Trim() -split '\r?\n') | Should -Be @('forked cpy', 'done')
        $r.ExitCode | Should -Be 0
    }

    It 'a failing eval is an error record GuestEvalFailed with the result as TargetObject, and still outputs the result' {
        $out = @(Invoke-ForkdEval -Id $children[0].Id -Code '1/0' -Confirm:$false -ErrorVariable ev -ErrorAction SilentlyContinue)
        $out.Count | Should -Be 1
        $out[0].Succeeded | Should -BeFalse
        $ev.Count | Should -Be 1
        $ev[0].FullyQualifiedErrorId | Should -BeLike 'GuestEvalFailed*'
        $ev[0].TargetObject.ChildId | Should -Be $children[0].Id
        $ev[0].Exception.Message | Should -Match 'ZeroDivisionError'
        Invoke-ForkdEval -Id $children[0].Id -Code '1/0' -Confirm:$false -NoGuestError -ErrorVariable quiet | Out-Null
        $quiet.Count | Should -Be 0
    }

    It 'a failing exec (exit code or missing binary) is an error record GuestExecFailed; exit 0 is not' {
        $id = $children[0].Id
        Invoke-ForkdExec -Id $id -Command 'sh', '-c', 'exit 3' -Confirm:$false -ErrorVariable e1 -ErrorAction SilentlyContinue | Out-Null
        $e1[0].FullyQualifiedErrorId | Should -BeLike 'GuestExecFailed*'
        $e1[0].TargetObject.ExitCode | Should -Be 3
        Invoke-ForkdExec -Id $id -Command 'no-such-binary' -Confirm:$false -ErrorVariable e2 -ErrorAction SilentlyContinue | Out-Null
        $e2[0].FullyQualifiedErrorId | Should -BeLike 'GuestExecFailed*'
        Invoke-ForkdExec -Id $id -Command 'true' -Confirm:$false -ErrorVariable e3 | Out-Null
        $e3.Count | Should -Be 0
        Invoke-ForkdExec -Id $id -Command 'sh', '-c', 'exit 3' -Confirm:$false -NoGuestError -ErrorVariable e4 | Out-Null
        $e4.Count | Should -Be 0
    }

    It "under `$ErrorActionPreference='Stop' a failing eval and a failing exec stop the runbook" {
        $prelude = "`$env:FORKD_DATA_DIR='$env:FORKD_DATA_DIR'; `$ErrorActionPreference='Stop'"
        $eval = Invoke-Runbook "$prelude; Invoke-ForkdEval -Id '$($children[0].Id)' -Code '1/0' | Out-Null; 'after'"
        $eval.ExitCode | Should -Not -Be 0
        $eval.Output | Should -Not -Match 'after'
        $eval.Output | Should -Match 'ZeroDivisionError'
        $exec = Invoke-Runbook "$prelude; Invoke-ForkdExec -Id '$($children[0].Id)' -Command 'false' | Out-Null; 'after'"
        $exec.ExitCode | Should -Not -Be 0
        $exec.Output | Should -Not -Match 'after'
        $ok = Invoke-Runbook "$prelude; Invoke-ForkdExec -Id '$($children[0].Id)' -Command 'false' -NoGuestError | Out-Null; 'after'"
        $ok.Output | Should -Match 'after'
    }

    It 'real children and their results render within 80 columns with ids whole, under property names' {
        $views = @((Get-ForkdChild), (Get-ForkdChild | Invoke-ForkdEval -Code 'base' -Confirm:$false), (Get-ForkdChild | Test-ForkdAgent))
        foreach ($objects in $views) {
            $lines = ($objects | Out-String -Width 80) -split "`n" | ForEach-Object TrimEnd
            $lines | ForEach-Object { $_.Length | Should -BeLessOrEqual 80 }
            foreach ($id in $children.Id) { ($lines -join "`n") | Should -Match ([regex]::Escape($id)) }
            $header = $lines[[array]::FindIndex($lines, [Predicate[string]] { param($l) $l -match '^-+(\s+-+)*$' }) - 1] -split '\s+' | Where-Object { $_ }
            foreach ($column in $header) { $objects[0].PSObject.Properties.Name | Should -Contain $column }
        }
        (Get-ForkdChild)[0].Restore | Should -BeOfType [timespan]
    }

    It 'asks nothing and -WhatIf reports the refusal when a snapshot with running children would be removed' {
        { Remove-ForkdSnapshot -Tag cpy -WhatIf -ErrorAction Stop } | Should -Throw -ErrorId 'SnapshotInUse*'
        # -Confirm would prompt, and this host cannot answer: the in-use check must come first.
        { Remove-ForkdSnapshot -Tag cpy -Confirm -ErrorAction Stop } | Should -Throw -ErrorId 'SnapshotInUse*'
        { New-ForkdSnapshot -Tag cpy -Recipe minimal -Force -WhatIf } | Should -Throw -ErrorId 'SnapshotInUse*'
        Get-ForkdSnapshot -Tag cpy | Should -Not -BeNullOrEmpty
    }

    It 'a warm-up that raises is WarmupFailed, an InvalidArgument with advice about the code, not the host' {
        $err = $null
        try { New-ForkdSnapshot -Tag cbad -Recipe minimal -WarmupCode 'import nosuchmodule' -ErrorAction Stop } catch { $err = $_ }
        $err | Should -Not -BeNullOrEmpty
        $err.FullyQualifiedErrorId | Should -BeLike 'WarmupFailed*'
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.ErrorDetails.RecommendedAction | Should -Match 'WarmupCode'
        $err.ErrorDetails.RecommendedAction | Should -Not -Match 'Test-ForkdHost'
        $err.Exception.Message | Should -Match 'ModuleNotFoundError'
        Get-ForkdSnapshot -Tag cbad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'TabExpansion2 completes live snapshot tags and child ids' {
        $line = 'Invoke-ForkdFork -Tag c'
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('cpy')
        $line = 'Remove-ForkdSnapshot -Tag '
        (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain 'cpy'
        foreach ($cmd in 'Invoke-ForkdEval', 'Stop-ForkdChild', 'Get-ForkdChild', 'Test-ForkdAgent') {
            $line = "$cmd -Id cpy-"
            $ids = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
            ($ids | Sort-Object) | Should -Be ($children.Id | Sort-Object) -Because $cmd
        }
    }
}
