# The playwright-browser recipe end to end on QEMU/TCG: a parent whose Chromium (Debian's, driven by
# playwright-core) is launched headless with about:blank open is snapshotted once per test run (the
# root disk is cached in $env:FORKD_CACHE_DIR); two children each set their own page content and
# read their own title back. No internet: pages come from page.setContent. Budget on 2 cores: ~5 min
# for the snapshot (Chromium starts in ~3 min under TCG) plus ~3 min to build the root disk once.
Describe 'playwright-browser recipe' -Tag Browser {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'TestEnvironment.ps1')
        Enter-ForkdTestEnvironment
        $script:snapshot = New-ForkdSnapshot -Tag pwb -Recipe playwright-browser -Verbose 4>&1 |
            ForEach-Object { if ($_ -is [System.Management.Automation.VerboseRecord]) { Write-Host "  $($_.Message)" } else { $_ } }
        $script:children = @(Invoke-ForkdFork -Tag pwb -Count 2)
        function Invoke-Js([string] $Id, [string] $Code) { Invoke-ForkdEval -Id $Id -Code $Code -TimeoutSec 300 -NoGuestError }
    }
    AfterAll {
        Exit-ForkdTestEnvironment
    }

    It 'snapshots a 2048 MiB parent with the browser already launched' {
        $snapshot.IsComplete | Should -BeTrue
        $snapshot.MemoryMiB | Should -Be 2048
        $children.Count | Should -Be 2
        # The browser in each child is the parent's, already running: its page is still about:blank.
        foreach ($c in $children) {
            $r = Invoke-Js $c.Id 'return [browser.isConnected(), page.url(), browser.contexts().length]'
            $r.Error | Should -BeNullOrEmpty
            $r.Value[0] | Should -BeTrue
            $r.Value[1] | Should -Be 'about:blank'
            $r.Value[2] | Should -Be 1
        }
    }

    It 'gives each child its own page: different content, each reads its own title back' {
        $a, $b = $children
        (Invoke-Js $a.Id "await page.setContent('<title>alpha</title><h1>A</h1>'); return await page.title()").Value | Should -Be 'alpha'
        (Invoke-Js $b.Id "await page.setContent('<title>beta</title><h1>B</h1>'); return await page.title()").Value | Should -Be 'beta'
        # Read again after both wrote: neither saw the other's page.
        (Invoke-Js $a.Id 'return await page.title()').Value | Should -Be 'alpha'
        (Invoke-Js $b.Id "return await page.textContent('h1')").Value | Should -Be 'B'
    }

    It 'returns native values with NaN and infinities from the page' {
        $r = Invoke-Js $children[0].Id 'return await page.evaluate(() => ({n: 0/0, inf: 1/0, neg: -1/0, list: [1, 2.5]}))'
        $r.Error | Should -BeNullOrEmpty
        [double]::IsNaN($r.Value['n']) | Should -BeTrue
        $r.Value['inf'] | Should -Be ([double]::PositiveInfinity)
        $r.Value['neg'] | Should -Be ([double]::NegativeInfinity)
        $r.Value['list'] | Should -Be @(1, 2.5)
    }

    It 'surfaces the JavaScript stack when the code throws' {
        $r = Invoke-Js $children[1].Id "await page.waitForSelector('#never-there', { timeout: 50 })"
        $r.Succeeded | Should -BeFalse
        $r.Error | Should -Match 'Timeout'
        $r.Traceback | Should -Match 'at '
    }
}
