# Branching a running child (Checkpoint-ForkdChild, Full and Diff), diff chains, Merge-ForkdSnapshot and
# Suspend/Resume-ForkdChild, over the built module with real QEMU (TCG) children of the `minimal` recipe.
# One parent is booted; every later snapshot is a checkpoint of a child. Budget: ~3-5 min on 2 loaded cores.
Describe 'Branching running children' -Tag Branch {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $script:root = New-ForkdSnapshot -Tag br -Recipe minimal -WarmupCode "state = {'n': 1}"
        $script:source = Invoke-ForkdFork -Tag br
        # What every branch of the source must see: the interpreter, a file in its tmpfs, 3 MB it allocated.
        $script:probe = "(state['n'], open('/tmp/note').read(), len(big))"
        function Get-Probe($Child) {
            $r = $Child | Invoke-ForkdEval -Code $script:probe -TimeoutSec 60
            $r.Error | Should -BeNullOrEmpty
            , @($r.Value)
        }
        function Get-Meta([string] $Tag) { Get-Content (Join-Path (Get-ForkdSnapshot -Tag $Tag).Path 'snapshot.json') -Raw | ConvertFrom-Json }
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'checkpoints a child in each mode; branches see that instant, not later changes; the source runs on' {
        ($source | Invoke-ForkdEval -Code "state['n'] = 2; open('/tmp/note', 'w').write('at-checkpoint'); big = bytearray(b'q' * 3000000)").Error |
            Should -BeNullOrEmpty
        $script:full = $source | Checkpoint-ForkdChild -Tag br-full -Mode Full
        $script:diff = $source | Checkpoint-ForkdChild -Tag br-diff -Mode Diff
        ($source | Invoke-ForkdEval -Code "state['n'] = 3; open('/tmp/note', 'w').write('after'); del big; state['n']").Value | Should -Be 3
        (Get-ForkdChild -Id $source.Id).State | Should -Be 'Running'

        foreach ($s in $full, $diff) {
            $s | Should -BeOfType ([Forkd.Core.Store.SnapshotInfo])
            $s.IsComplete | Should -BeTrue
            $s.PauseTime | Should -BeOfType ([TimeSpan])
            $s.PauseTime | Should -BeGreaterThan ([TimeSpan]::Zero)
            $s.BytesWritten | Should -BeGreaterThan 0
            $s.SourceChildId | Should -Be $source.Id
            $s.ParentTag | Should -Be 'br'
        }
        # Diff wrote only the pages the child changed (the 3 MB and some kernel pages), Full all non-zero RAM.
        $diff.BytesWritten | Should -BeLessThan ($full.BytesWritten / 2)
        $diff.BytesWritten | Should -BeGreaterThan 3000000
        Test-Path (Join-Path $diff.Path 'memory.bin') | Should -BeFalse   # assembled on first fork, not before

        $metaFull = Get-Meta br-full
        $metaFull.parent_tag | Should -BeNullOrEmpty
        $metaFull.source.child_id | Should -Be $source.Id
        $metaFull.source.parent_tag | Should -Be 'br'
        $metaDiff = Get-Meta br-diff
        $metaDiff.parent_tag | Should -Be 'br'
        # forkd 0.5's parent_content_hash: SHA-256 of the parent's memory image, as anyone computes it.
        $metaDiff.parent_content_hash | Should -Be (Get-FileHash (Join-Path $root.Path 'memory.bin') -Algorithm SHA256).Hash.ToLowerInvariant()

        $script:fullChild = Invoke-ForkdFork -Tag br-full
        $script:diffChild = Invoke-ForkdFork -Tag br-diff
        $fromFull = Get-Probe $fullChild
        $fromDiff = Get-Probe $diffChild
        $fromFull | Should -Be @(2, 'at-checkpoint', 3000000)
        $fromDiff | Should -Be $fromFull
        ($source | Invoke-ForkdEval -Code "(state['n'], open('/tmp/note').read())").Value | Should -Be @(3, 'after')
        Test-Path (Join-Path $diff.Path 'memory.bin') | Should -BeTrue
        $fullChild | Stop-ForkdChild -Confirm:$false
    }

    It 'a chain of three diffs forks with the head state, and its merged copy behaves the same' {
        ($diffChild | Invoke-ForkdEval -Code "state['n'] = 10; open('/tmp/note', 'w').write('link-2')").Error | Should -BeNullOrEmpty
        $d2 = $diffChild | Checkpoint-ForkdChild -Tag br-d2 -Mode Diff
        $d2.ParentTag | Should -Be 'br-diff'
        $d2Child = Invoke-ForkdFork -Tag br-d2
        ($d2Child | Invoke-ForkdEval -Code "state['n'] = 20; open('/tmp/note', 'w').write('link-3')").Error | Should -BeNullOrEmpty
        $d3 = $d2Child | Checkpoint-ForkdChild -Tag br-d3 -Mode Diff
        $diffChild, $d2Child | Stop-ForkdChild -Confirm:$false
        (Get-Meta br-d3).parent_tag | Should -Be 'br-d2'
        (Get-Meta br-d2).parent_content_hash | Should -Be (Get-FileHash (Join-Path (Get-ForkdSnapshot br-diff).Path 'memory.bin') -Algorithm SHA256).Hash.ToLowerInvariant()

        $d3Child = Invoke-ForkdFork -Tag br-d3
        $fromChain = Get-Probe $d3Child
        $d3Child | Stop-ForkdChild -Confirm:$false
        $fromChain | Should -Be @(20, 'link-3', 3000000)

        $flat = Merge-ForkdSnapshot -Tag br-d3 -DestinationTag br-flat
        $flat.Chain | Should -Be @('br', 'br-diff', 'br-d2', 'br-d3')
        $metaFlat = Get-Meta br-flat
        $metaFlat.parent_tag | Should -BeNullOrEmpty
        $metaFlat.memory_diff | Should -BeNullOrEmpty
        @($metaFlat.source.chain) | Should -Be @('br', 'br-diff', 'br-d2', 'br-d3')
        (Get-FileHash (Join-Path $flat.Path 'memory.bin')).Hash | Should -Be (Get-FileHash (Join-Path (Get-ForkdSnapshot br-d3).Path 'memory.bin')).Hash
        $flatChild = Invoke-ForkdFork -Tag br-flat
        $fromFlat = Get-Probe $flatChild
        $flatChild | Stop-ForkdChild -Confirm:$false
        $fromFlat | Should -Be $fromChain
    }

    It 'never maps a changed assembled image: a planted cache is assembled again, so children see the chain state' {
        $image = Join-Path (Get-ForkdSnapshot br-d3).Path 'memory.bin'
        # Every copy of the head's note ('link-3', in the guest's page cache and the interpreter) becomes 'PLANT3'.
        $patch = "import mmap,sys`nf=open(sys.argv[1],'r+b');m=mmap.mmap(f.fileno(),0);n=0;i=m.find(b'link-3')`nwhile i>=0:`n  m[i:i+6]=b'PLANT3';n+=1;i=m.find(b'link-3',i+6)`nm.flush();print(n)"
        [int](python3 -c $patch $image) | Should -BeGreaterThan 0
        $child = Invoke-ForkdFork -Tag br-d3
        try { $seen = Get-Probe $child } finally { $child | Stop-ForkdChild -Confirm:$false }
        $seen | Should -Be @(20, 'link-3', 3000000)
        [int](python3 -c $patch $image) | Should -BeGreaterThan 0 -Because 'the fork rebuilt the image from the chain'
    }

    It '-Force never replaces a snapshot that diff snapshots depend on (SnapshotHasDependents, naming them)' {
        $err = $null
        $source | Checkpoint-ForkdChild -Tag br-diff -Mode Full -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotHasDependents'
        $err[0].Exception.Message | Should -Match 'br-d2' -Because 'the message names the dependents'
        $err[0].ErrorDetails.RecommendedAction | Should -Match 'Merge-ForkdSnapshot -Tag br-d2'
        # Refused before a parent VM is booted (the check comes before the question, so -WhatIf shows it too).
        { New-ForkdSnapshot -Tag br-diff -Recipe minimal -Force -WhatIf } | Should -Throw -ErrorId 'SnapshotHasDependents*'
        (Get-Meta br-diff).parent_tag | Should -Be 'br' -Because 'br-diff is still the diff its dependents were taken over'
    }

    It 'refuses to fork a chain whose parent memory changed (SnapshotChainBroken)' {
        # br-d2's diff is what its memory is made of (its memory.bin is only a cache, rebuilt when changed).
        $diffFile = Join-Path (Get-ForkdSnapshot br-d2).Path 'memory.diff'
        $stream = [IO.File]::Open($diffFile, 'Open', 'ReadWrite')
        try { $stream.Position = $stream.Length - 4096; $stream.Write([byte[]](1..64), 0, 64) } finally { $stream.Dispose() }
        $err = { Invoke-ForkdFork -Tag br-d3 } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -Match '^SnapshotChainBroken'
        $err.Exception.Message | Should -Match "'br-d2' changed"
        @(Get-ForkdChild -Tag br-d3 | Where-Object State -EQ 'Running').Count | Should -Be 0
    }

    It 'refuses to remove a parent with dependents unless -Force, which removes them too' {
        $err = $null
        Remove-ForkdSnapshot -Tag br-diff -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotHasDependents'
        Get-ForkdSnapshot -Tag br-d3 | Should -Not -BeNullOrEmpty
        Remove-ForkdSnapshot -Tag br-diff -Force -Confirm:$false
        @(Get-ForkdSnapshot).Tag | Sort-Object | Should -Be @('br', 'br-flat', 'br-full')
    }

    It 'suspends and resumes a child (State Paused), and a paused child still holds its snapshot' {
        Suspend-ForkdChild -Id $source.Id -PassThru | Select-Object -ExpandProperty State | Should -Be 'Paused'
        (Get-ForkdChild -Id $source.Id).State | Should -Be 'Paused'
        $err = $null
        Remove-ForkdSnapshot -Tag br -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotInUse'
        Get-ForkdChild -Id $source.Id | Resume-ForkdChild
        (Get-ForkdChild -Id $source.Id).State | Should -Be 'Running'
        ($source | Invoke-ForkdEval -Code "state['n']").Value | Should -Be 3
    }

    It 'a checkpoint cancelled while the source is paused leaves the source running and no tag' {
        $engine = [Forkd.Core.Engine.ForkdEngine]::FromEnvironment()
        $cts = [Threading.CancellationTokenSource]::new()
        $request = [Forkd.Core.Engine.CheckpointRequest]@{ ChildId = $source.Id; Tag = 'br-cancel'; Mode = 'Diff'; OnPaused = [Action]$cts.Cancel }
        $caught = { $engine.Checkpoints.CheckpointAsync($request, $null, $cts.Token).GetAwaiter().GetResult() } | Should -Throw -PassThru
        $caught.Exception.GetBaseException() | Should -BeOfType ([OperationCanceledException])
        Get-ForkdSnapshot -Tag br-cancel -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        @(Get-ChildItem (Join-Path $env:FORKD_DATA_DIR 'staging') -ErrorAction SilentlyContinue).Count | Should -Be 0
        (Get-ForkdChild -Id $source.Id).State | Should -Be 'Running'
        ($source | Invoke-ForkdEval -Code "state['n'] + 1").Value | Should -Be 4
    }

    It 'refuses an existing tag without -Force, and an exited child' {
        $err = $null
        $source | Checkpoint-ForkdChild -Tag br-full -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotExists'
        Checkpoint-ForkdChild -Id 'br-00000000' -Tag br-x -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -Match '^ChildNotFound'
    }
}
