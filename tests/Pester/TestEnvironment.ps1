# Dot-sourced by the Pester files that run VMs: one private data dir per file under $TestDrive, the shared
# guest-image cache (<repo>/.cache unless FORKD_CACHE_DIR says otherwise), and both restored afterwards.

function Enter-ForkdTestEnvironment {
    Import-Module $env:FORKD_MODULE_PATH -Force
    $script:savedData = $env:FORKD_DATA_DIR
    $script:savedCache = $env:FORKD_CACHE_DIR
    $env:FORKD_DATA_DIR = Join-Path $TestDrive 'data'
    if (-not $env:FORKD_CACHE_DIR) { $env:FORKD_CACHE_DIR = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../.cache')) }
}

# Stops every child of the file's data dir, then puts the environment back.
function Exit-ForkdTestEnvironment {
    Get-ForkdChild -ErrorAction SilentlyContinue | Stop-ForkdChild -Confirm:$false -ErrorAction SilentlyContinue
    $env:FORKD_DATA_DIR = $script:savedData
    $env:FORKD_CACHE_DIR = $script:savedCache
}
