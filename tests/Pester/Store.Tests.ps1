BeforeAll {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedData = $env:FORKD_DATA_DIR
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'

    function New-TestSnapshot([string] $Tag, [switch] $Rootfs) {
        $dir = New-Item -ItemType Directory -Force -Path (Join-Path $env:FORKD_DATA_DIR "snapshots/$Tag")
        [IO.File]::WriteAllBytes((Join-Path $dir 'vmstate'), [byte[]]::new(1000))
        $fs = [IO.File]::Create((Join-Path $dir 'memory.bin')); $fs.SetLength(2MB); $fs.Dispose()
        if ($Rootfs) { [IO.File]::WriteAllBytes((Join-Path $dir 'rootfs.ext4'), [byte[]]::new(4096)) }
        $dir.FullName
    }
}

AfterAll {
    $env:FORKD_DATA_DIR = $savedData
}

Describe 'Hostile tags' -Tag Store {
    BeforeAll {
        $script:outside = Join-Path $TestDrive 'outside'
        New-Item -ItemType Directory -Path $outside | Out-Null
        Set-Content (Join-Path $outside 'keep') 'x'
    }

    It 'rejects <Case> with InvalidTag on <Cmdlet>' -ForEach @(
        foreach ($cmdlet in 'Get-ForkdSnapshot', 'Remove-ForkdSnapshot') {
            @{ Cmdlet = $cmdlet; Case = 'an absolute path'; Tag = '/etc/passwd' }
            @{ Cmdlet = $cmdlet; Case = 'dot-dot'; Tag = '..' }
            @{ Cmdlet = $cmdlet; Case = 'traversal'; Tag = '../outside' }
            @{ Cmdlet = $cmdlet; Case = 'a leading dot'; Tag = '.x' }
            @{ Cmdlet = $cmdlet; Case = 'a leading dash'; Tag = '-x' }
            @{ Cmdlet = $cmdlet; Case = '65 characters'; Tag = 'a' * 65 }
            @{ Cmdlet = $cmdlet; Case = 'NUL'; Tag = "a$([char]0)b" }
            @{ Cmdlet = $cmdlet; Case = 'a newline'; Tag = "a`nb" }
            @{ Cmdlet = $cmdlet; Case = 'a Cyrillic look-alike'; Tag = "py$([char]0x0430)gent" }
            @{ Cmdlet = $cmdlet; Case = 'a fullwidth slash'; Tag = "a$([char]0xFF0F)b" }
        }
    ) {
        $err = $null
        $extra = if ($Cmdlet -like 'Remove-*') { @{ Confirm = $false } } else { @{} }
        & $Cmdlet -Tag $Tag @extra -ErrorVariable err -ErrorAction SilentlyContinue
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidTag,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        Test-Path (Join-Path $outside 'keep') | Should -BeTrue
    }

    It 'rejects an empty tag at parameter binding' {
        { Get-ForkdSnapshot -Tag '' -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError*'
    }

    It 'points at the offending character' {
        $err = $null
        Get-ForkdSnapshot -Tag 'ok/../../x' -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].Exception.Message | Should -Match "'/' \(U\+002F\) at position 3"
    }

    It 'checks tags arriving from the pipeline, one error per bad tag, and keeps going' {
        New-TestSnapshot -Tag good | Out-Null
        $err = $null
        $out = [pscustomobject]@{ Tag = '../x' }, [pscustomobject]@{ Tag = 'good' } |
            Get-ForkdSnapshot -ErrorVariable err -ErrorAction SilentlyContinue
        $out.Tag | Should -Be 'good'
        $err.Count | Should -Be 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'InvalidTag,*'
    }
}

Describe 'Get-ForkdSnapshot' -Tag Store {
    BeforeAll {
        Remove-Item (Join-Path $env:FORKD_DATA_DIR 'snapshots') -Recurse -Force -ErrorAction SilentlyContinue
        New-TestSnapshot -Tag alpha -Rootfs | Out-Null
        New-TestSnapshot -Tag beta | Out-Null
    }

    It 'returns typed snapshot objects sorted by tag' {
        $all = Get-ForkdSnapshot
        $all | Should -HaveCount 2
        $all[0] | Should -BeOfType ([Forkd.Core.Store.SnapshotInfo])
        $all.Tag | Should -Be 'alpha', 'beta'
        $all[0].HasRootfs | Should -BeTrue
        $all[0].SizeBytes | Should -Be (1000 + 2MB + 4096)
    }

    It 'filters with wildcards and reports an exact miss as SnapshotNotFound' {
        (Get-ForkdSnapshot -Tag 'b*').Tag | Should -Be 'beta'
        Get-ForkdSnapshot -Tag 'z*' | Should -BeNullOrEmpty
        { Get-ForkdSnapshot -Tag zeta -ErrorAction Stop } | Should -Throw -ErrorId 'SnapshotNotFound,*'
    }

    It 'shows a forkd-images style table with human sizes' {
        $text = Get-ForkdSnapshot | Format-Table | Out-String -Width 200
        $text | Should -Match 'alpha\s+2\.0 MiB\s+yes'
        $text | Should -Match 'beta\s+2\.0 MiB\s+—'
    }
}

Describe 'A damaged snapshot among good ones' -Tag Store {
    BeforeAll {
        Remove-Item (Join-Path $env:FORKD_DATA_DIR 'snapshots') -Recurse -Force -ErrorAction SilentlyContinue
        New-TestSnapshot -Tag good | Out-Null
        $bad = New-TestSnapshot -Tag bad
        Set-Content -Path (Join-Path $bad 'snapshot.json') -Value '{"vmstate": "vmstate", "memory": "memory.bin", "volumes": 5}'
    }

    It 'is reported as one non-terminating error while the others are listed' {
        $err = $null
        $all = Get-ForkdSnapshot -ErrorVariable err -ErrorAction SilentlyContinue
        $all.Tag | Should -Be 'good'
        $err | Should -HaveCount 1
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotMetadataInvalid,*'
        $err[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $err[0].Exception.Message | Should -Match 'volumes'
    }

    It 'can always be removed' {
        Remove-ForkdSnapshot -Tag bad -Confirm:$false
        Test-Path (Join-Path $env:FORKD_DATA_DIR 'snapshots/bad') | Should -BeFalse
        (Get-ForkdSnapshot).Tag | Should -Be 'good'
    }
}

Describe 'Remove-ForkdSnapshot' -Tag Store {
    BeforeEach {
        $script:dir = New-TestSnapshot -Tag victim
    }

    It 'is high impact' {
        (Get-Command Remove-ForkdSnapshot).ImplementingType.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false)[0].ConfirmImpact |
            Should -Be 'High'
    }

    It 'changes nothing with -WhatIf' {
        Get-ForkdSnapshot -Tag victim | Remove-ForkdSnapshot -WhatIf
        Test-Path (Join-Path $dir 'memory.bin') | Should -BeTrue
        (Get-ForkdSnapshot -Tag victim).Tag | Should -Be 'victim'
    }

    It 'removes snapshots piped from Get-ForkdSnapshot' {
        Get-ForkdSnapshot -Tag victim | Remove-ForkdSnapshot -Confirm:$false
        Test-Path $dir | Should -BeFalse
    }

    It 'reports a missing tag as a non-terminating SnapshotNotFound' {
        $err = $null
        Remove-ForkdSnapshot -Tag missing, victim -Confirm:$false -ErrorVariable err -ErrorAction SilentlyContinue
        $err[0].FullyQualifiedErrorId | Should -BeLike 'SnapshotNotFound,*'
        $err[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        Test-Path $dir | Should -BeFalse
    }
}

Describe 'Get-ForkdDataDirectory' -Tag Store {
    It 'honours FORKD_DATA_DIR and TMPDIR' {
        $saved = $env:TMPDIR
        try {
            $env:TMPDIR = Join-Path $TestDrive 'tmp'
            $p = Get-ForkdDataDirectory
            $p.DataDirectory | Should -Be $env:FORKD_DATA_DIR
            $p.TempDirectory | Should -Be $env:TMPDIR
            $p.SnapshotsDirectory | Should -Be (Join-Path $env:FORKD_DATA_DIR 'snapshots')
            $p.StagingDirectory | Should -Be (Join-Path $env:FORKD_DATA_DIR 'staging')
        } finally { $env:TMPDIR = $saved }
    }

    It 'shows the cache dir the engine really uses: FORKD_CACHE_DIR, else <data>/cache' {
        $saved = $env:FORKD_CACHE_DIR
        try {
            $env:FORKD_CACHE_DIR = Join-Path $TestDrive 'elsewhere-cache'
            (Get-ForkdDataDirectory).CacheDirectory | Should -Be $env:FORKD_CACHE_DIR
            $env:FORKD_CACHE_DIR = $null
            (Get-ForkdDataDirectory).CacheDirectory | Should -Be (Join-Path $env:FORKD_DATA_DIR 'cache')
        } finally { $env:FORKD_CACHE_DIR = $saved }
    }
}
