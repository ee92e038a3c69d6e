# Packs of diff chains (manifest v2) with real QEMU (TCG) children: a depth-2 chain of checkpoints is exported,
# imported into a fresh data dir, and its head forks with the state the source had. Budget: ~2-3 min on 2 cores.
Describe 'Chain packs (manifest v2) round trip' -Tag BranchPack {
    BeforeAll {
        Import-Module $env:FORKD_MODULE_PATH -Force
        $script:savedData = $env:FORKD_DATA_DIR
        $script:savedCache = $env:FORKD_CACHE_DIR
        $script:sourceData = Join-Path $TestDrive 'source'
        $script:targetData = Join-Path $TestDrive 'target'
        $env:FORKD_DATA_DIR = $sourceData
        if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
        $script:probe = "(state['n'], open('/tmp/note').read(), len(big))"
        function Invoke-Checked($Child, [string] $Code) {
            $r = $Child | Invoke-ForkdEval -Code $Code -TimeoutSec 60
            $r.Error | Should -BeNullOrEmpty
            , @($r.Value)
        }

        New-ForkdSnapshot -Tag pk -Recipe minimal -WarmupCode "state = {'n': 1}" | Out-Null
        $c0 = Invoke-ForkdFork -Tag pk
        Invoke-Checked $c0 "state['n'] = 2; open('/tmp/note', 'w').write('link-1'); big = bytearray(b'q' * 2000000)" | Out-Null
        $c0 | Checkpoint-ForkdChild -Tag pk-d1 -Mode Diff | Out-Null
        $c0 | Stop-ForkdChild -Confirm:$false
        $c1 = Invoke-ForkdFork -Tag pk-d1
        Invoke-Checked $c1 "state['n'] = 3; open('/tmp/note', 'w').write('link-2')" | Out-Null
        $c1 | Checkpoint-ForkdChild -Tag pk-d2 -Mode Diff | Out-Null
        Invoke-Checked $c1 "state['n'] = 4; open('/tmp/note', 'w').write('after')" | Out-Null
        $c1 | Stop-ForkdChild -Confirm:$false
        $script:pack = Export-ForkdPack -Tag pk-d2 -Path (Join-Path $TestDrive 'chain.forkd-snapshot.tar.zst')
    }
    AfterAll {
        foreach ($dir in $sourceData, $targetData) {
            $env:FORKD_DATA_DIR = $dir
            Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
        }
        $env:FORKD_DATA_DIR = $script:savedData
        $env:FORKD_CACHE_DIR = $script:savedCache
    }

    It 'exports a depth-2 chain as manifest v2, root to head' {
        $pack.FormatVersion | Should -Be 2
        @($pack.Chain) | Should -Be @('pk', 'pk-d1', 'pk-d2')
        @($pack.Files.Path) | Should -Contain 'pk/memory.bin'
        @($pack.Files.Path) | Should -Contain 'pk-d2/memory.diff'
        @($pack.Files.Path) | Should -Not -Contain 'pk-d1/memory.bin'
        # The manifest, as any tar reader sees it: version 2 and chain[] with per-link prefixes.
        $manifest = (& zstd -dc $pack.Path | & tar -xO -f - manifest.toml) -join "`n"
        $manifest | Should -Match '(?m)^forkd_pack_version = 2$'
        $manifest | Should -Match '(?m)^prefix = "pk-d1/"$'
    }

    It 'imports into a fresh data dir and the head forks with the state at its checkpoint' {
        $env:FORKD_DATA_DIR = $targetData
        $head = Import-ForkdPack -Path $pack.Path
        $head.Tag | Should -Be 'pk-d2'
        @(Get-ForkdSnapshot).Tag | Sort-Object | Should -Be @('pk', 'pk-d1', 'pk-d2')
        $child = Invoke-ForkdFork -Tag pk-d2
        try { $seen = Invoke-Checked $child $probe } finally { $child | Stop-ForkdChild -Confirm:$false }
        $seen | Should -Be @(3, 'link-2', 2000000)
        $mid = Invoke-ForkdFork -Tag pk-d1
        try { $seenMid = Invoke-Checked $mid $probe } finally { $mid | Stop-ForkdChild -Confirm:$false }
        $seenMid | Should -Be @(2, 'link-1', 2000000)
    }

    It 'imports again over the installed chain: the ancestors are reused by hash, the head needs -Force' {
        $env:FORKD_DATA_DIR = $targetData
        $err = $null
        Import-ForkdPack -Path $pack.Path -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotExists'
        $copy = Import-ForkdPack -Path $pack.Path -Tag pk-copy
        $copy.Metadata.ParentTag | Should -Be 'pk-d1'
        @(Get-ForkdSnapshot).Tag | Sort-Object | Should -Be @('pk', 'pk-copy', 'pk-d1', 'pk-d2')
        # Two links under one local tag are refused; -Force on a head tag that diffs depend on is refused, naming them.
        $err = $null
        Import-ForkdPack -Path $pack.Path -Tag pk-d1 -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^PackChainTagConflict'
        Import-ForkdPack -Path $pack.Path -Tag pk-d1 -ChainTagPrefix x- -Force -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^SnapshotHasDependents'
        $err[0].Exception.Message | Should -Match 'pk-copy'
        @(Get-ForkdSnapshot).Tag | Sort-Object | Should -Be @('pk', 'pk-copy', 'pk-d1', 'pk-d2')
    }

    It 'an import killed between two link installs leaves complete links only, and the next import finishes the chain' {
        $crashData = Join-Path $TestDrive 'crash'
        $script = Join-Path $TestDrive 'crash-import.ps1'
        Set-Content $script "`$ErrorActionPreference = 'Stop'; Import-Module '$env:FORKD_MODULE_PATH'; Import-ForkdPack -Path '$($pack.Path)' | Out-Null"
        $psi = [Diagnostics.ProcessStartInfo]::new((Join-Path $PSHOME 'pwsh'))
        foreach ($a in '-NoProfile', '-NonInteractive', '-File', $script) { $psi.ArgumentList.Add($a) }
        $psi.Environment['FORKD_DATA_DIR'] = $crashData
        $psi.Environment['FORKD_FAILPOINTS'] = 'pack.chain.after-link' # SIGKILL right after the root is installed
        $p = [Diagnostics.Process]::Start($psi)
        $p.WaitForExit(120000) | Should -BeTrue
        $p.ExitCode | Should -Be 137
        $env:FORKD_DATA_DIR = $crashData
        $left = @(Get-ForkdSnapshot)
        $left.Tag | Should -Be @('pk') -Because 'links install root first, so what a kill leaves has all its parents'
        $left[0].IsComplete | Should -BeTrue
        @(Get-ChildItem (Join-Path $crashData 'staging') -ErrorAction SilentlyContinue).Count | Should -Be 0 -Because 'the dead import dir is removed by the next store operation'
        (Import-ForkdPack -Path $pack.Path).Tag | Should -Be 'pk-d2'
        @(Get-ForkdSnapshot).Tag | Sort-Object | Should -Be @('pk', 'pk-d1', 'pk-d2')
        $child = Invoke-ForkdFork -Tag pk-d2
        try { $seen = Invoke-Checked $child $probe } finally { $child | Stop-ForkdChild -Confirm:$false }
        $seen | Should -Be @(3, 'link-2', 2000000)
    }

    It 'refuses a chain pack whose root image was changed (PackChainParentMismatch) and installs nothing' {
        $env:FORKD_DATA_DIR = Join-Path $TestDrive 'hostile'
        $work = Join-Path $TestDrive 'recraft'
        New-Item -ItemType Directory -Force $work | Out-Null
        & zstd -q -dc $pack.Path -o (Join-Path $work 'p.tar')
        $script = @'
import io, re, sys, tarfile, hashlib
src, dst = sys.argv[1], sys.argv[2]
t = tarfile.open(src); members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
manifest = members[0][1].decode(); out = []
for m, data in members[1:]:
    if m.name == 'pk/memory.bin':
        b = bytearray(data); b[1 << 20] ^= 0xFF; data = bytes(b)
        manifest = re.sub(r'(path = "pk/memory.bin"\nsize = \d+\nsha256 = ")[0-9a-f]+', lambda g: g.group(1) + hashlib.sha256(data).hexdigest(), manifest)
    out.append((m.name, data))
w = tarfile.open(dst, 'w', format=tarfile.GNU_FORMAT)
for name, data in [('manifest.toml', manifest.encode())] + out:
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; w.addfile(ti, io.BytesIO(data))
w.close()
'@
        & python3 -c $script (Join-Path $work 'p.tar') (Join-Path $work 'h.tar')
        & zstd -q -f (Join-Path $work 'h.tar') -o (Join-Path $work 'hostile.forkd-snapshot.tar.zst')
        $err = $null
        Import-ForkdPack -Path (Join-Path $work 'hostile.forkd-snapshot.tar.zst') -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Match '^PackChainParentMismatch'
        @(Get-ForkdSnapshot -ErrorAction SilentlyContinue).Count | Should -Be 0
    }
}
