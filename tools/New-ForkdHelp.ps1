<#
.SYNOPSIS
    Generates the module's MAML help from docs/cmdlets/<Cmdlet>.md and the cmdlets' own metadata.
.DESCRIPTION
    platyPS is not available here, so this is our small equivalent. Text (synopsis, description,
    parameter descriptions, examples, notes) comes from the markdown; types, positions, pipeline
    input, aliases and parameter sets come from Get-Command, so they can never drift from the code.
    It fails when a cmdlet has no page, no synopsis, no example, or an undocumented parameter.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $SourcePath,
    [Parameter(Mandatory)] [string] $OutputPath
)
$ErrorActionPreference = 'Stop'

# One project address: the manifest's ProjectUri. The rendered docs/cmdlets/<Cmdlet>.md pages live under it (the
# cmdlets' HelpUri, HelpLinks.cs, must point there) and HelpInfoURI names its docs/ folder; any drift fails the build.
$manifest = Import-PowerShellDataFile -LiteralPath $ModulePath
$projectUri = $manifest.PrivateData.PSData.ProjectUri
$OnlineBase = "$projectUri/blob/main/docs/cmdlets/"
if ($manifest.HelpInfoURI -ne "$projectUri/tree/main/docs/") {
    throw "Forkd.psd1: HelpInfoURI is '$($manifest.HelpInfoURI)', expected '$projectUri/tree/main/docs/' (the ProjectUri's docs folder)"
}

function Read-HelpSource([string] $File) {
    $doc = @{ Synopsis = ''; Description = ''; Parameters = @{}; Examples = [System.Collections.Generic.List[object]]::new(); Notes = ''; Inputs = ''; Outputs = '' }
    $section = $null; $sub = $null; $buffer = [System.Text.StringBuilder]::new()
    $flush = {
        $text = $buffer.ToString().Trim()
        [void]$buffer.Clear()
        switch ($section) {
            'SYNOPSIS' { $doc.Synopsis = $text }
            'DESCRIPTION' { $doc.Description = $text }
            'NOTES' { $doc.Notes = $text }
            'INPUTS' { $doc.Inputs = $text }
            'OUTPUTS' { $doc.Outputs = $text }
            'PARAMETERS' { if ($sub) { $doc.Parameters[$sub.TrimStart('-')] = $text } }
            'EXAMPLES' {
                if ($sub) {
                    $m = [regex]::Match($text, '(?s)```(?:powershell)?\s*\n(.*?)\n```(.*)')
                    if (-not $m.Success) { throw "$File`: example '$sub' has no ```powershell block" }
                    $doc.Examples.Add([pscustomobject]@{ Title = $sub; Code = $m.Groups[1].Value.Trim(); Remarks = $m.Groups[2].Value.Trim() })
                }
            }
        }
    }
    $inFence = $false
    foreach ($line in Get-Content $File) {
        if ($line -match '^```') { $inFence = -not $inFence }
        if (-not $inFence -and $line -match '^## (.+)$') { & $flush; $section = $Matches[1].Trim().ToUpperInvariant(); $sub = $null; continue }
        if (-not $inFence -and $line -match '^### (.+)$') { & $flush; $sub = $Matches[1].Trim(); continue }
        if (-not $inFence -and $line -match '^# ') { continue }
        [void]$buffer.AppendLine($line)
    }
    & $flush
    $doc
}

# -WhatIf and -Confirm are documented like platyPS does (they show in SYNTAX and Get-Help -Parameter WhatIf works);
# the other common parameters are covered by about_CommonParameters.
$common = [System.Management.Automation.Cmdlet]::CommonParameters + @('UseTransaction')
$standard = @{
    WhatIf  = 'Shows what would happen if the cmdlet runs, with the same checks a real run makes first. The cmdlet is not run.'
    Confirm = 'Prompts you for confirmation before running the cmdlet.'
}

# The type as platyPS writes it: Int64 rather than Nullable`1, String[] for arrays.
function Get-TypeName([type] $Type) {
    $inner = [Nullable]::GetUnderlyingType($Type)
    if ($inner) { return $inner.Name }
    $Type.Name
}

# A parameter's default: the value a fresh cmdlet object holds (None for null, empty arrays and empty strings).
function Get-DefaultValue($Instance, $Parameter) {
    if ($Parameter.Name -in $standard.Keys) { return 'False' }
    $value = try { $Instance.($Parameter.Name) } catch { $null }
    if ($value -is [System.Management.Automation.SwitchParameter]) { return [string]$value.IsPresent }
    if ($null -eq $value -or ($value -is [string] -and $value -eq '') -or ($value -is [array] -and $value.Count -eq 0)) { return 'None' }
    if ($value -is [array]) { return $value -join ', ' }
    [string]$value
}
$module = Import-Module $ModulePath -PassThru -Force
$problems = [System.Collections.Generic.List[string]]::new()

$settings = [System.Xml.XmlWriterSettings]@{ Indent = $true; Encoding = [System.Text.UTF8Encoding]::new($false) }
$w = [System.Xml.XmlWriter]::Create($OutputPath, $settings)
$maml = 'http://schemas.microsoft.com/maml/2004/10'
$command = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$dev = 'http://schemas.microsoft.com/maml/dev/2004/10'
$w.WriteStartDocument()
$w.WriteStartElement('helpItems', 'http://msh'); $w.WriteAttributeString('schema', 'maml')
$w.WriteAttributeString('xmlns', 'maml', $null, $maml)
$w.WriteAttributeString('xmlns', 'command', $null, $command)
$w.WriteAttributeString('xmlns', 'dev', $null, $dev)

function Write-Paras([string] $Text) {
    foreach ($p in ($Text -split '\r?\n\s*\r?\n')) {
        if ($p.Trim()) { $w.WriteElementString('para', $maml, ($p.Trim() -replace '\s*\r?\n\s*', ' ')) }
    }
}

foreach ($cmd in Get-Command -Module $module.Name -CommandType Cmdlet | Sort-Object Name) {
    $file = Join-Path $SourcePath "$($cmd.Name).md"
    if (-not (Test-Path $file)) { $problems.Add("$($cmd.Name): no help page at $file"); continue }
    $doc = Read-HelpSource $file
    if (-not $doc.Synopsis) { $problems.Add("$($cmd.Name): no SYNOPSIS") }
    if (-not $doc.Description) { $problems.Add("$($cmd.Name): no DESCRIPTION") }
    if ($doc.Examples.Count -eq 0) { $problems.Add("$($cmd.Name): no EXAMPLES") }
    $params = $cmd.Parameters.Values | Where-Object { $_.Name -notin $common }
    foreach ($name in $standard.Keys) { if ($cmd.Parameters.ContainsKey($name) -and -not $doc.Parameters[$name]) { $doc.Parameters[$name] = $standard[$name] } }
    $instance = [Activator]::CreateInstance($cmd.ImplementingType)
    foreach ($p in $params) { if (-not $doc.Parameters[$p.Name]) { $problems.Add("$($cmd.Name): parameter -$($p.Name) is not documented") } }
    foreach ($name in $doc.Parameters.Keys) { if ($name -notin $params.Name) { $problems.Add("$($cmd.Name): documents -$name, which does not exist") } }

    $w.WriteStartElement('command', 'command', $command)
    $w.WriteStartElement('details', $command)
    $w.WriteElementString('name', $command, $cmd.Name)
    $w.WriteStartElement('description', $maml); Write-Paras $doc.Synopsis; $w.WriteEndElement()
    $w.WriteElementString('verb', $command, $cmd.Verb)
    $w.WriteElementString('noun', $command, $cmd.Noun)
    $w.WriteEndElement()
    $w.WriteStartElement('description', $maml); Write-Paras $doc.Description; $w.WriteEndElement()

    $writeParam = {
        param($p, $setParam, [switch] $InSyntax)
        $attr = if ($setParam) { $setParam } else { $p.ParameterSets.Values | Select-Object -First 1 }
        $pipeline = @()
        if ($attr.ValueFromPipeline) { $pipeline += 'ByValue' }
        if ($attr.ValueFromPipelineByPropertyName) { $pipeline += 'ByPropertyName' }
        $w.WriteStartElement('parameter', $command)
        $w.WriteAttributeString('required', ([string]$attr.IsMandatory).ToLowerInvariant())
        $w.WriteAttributeString('variableLength', 'true')
        $w.WriteAttributeString('globbing', ([string]([bool]($p.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] }))).ToLowerInvariant())
        $w.WriteAttributeString('pipelineInput', $(if ($pipeline) { "True ($($pipeline -join ', '))" } else { 'False' }))
        $w.WriteAttributeString('position', $(if ($attr.Position -ge 0) { [string]$attr.Position } else { 'named' }))
        $w.WriteAttributeString('aliases', $(if ($p.Aliases.Count) { $p.Aliases -join ', ' } else { 'none' }))
        $w.WriteElementString('name', $maml, $p.Name)
        $w.WriteStartElement('description', $maml); Write-Paras ([string]$doc.Parameters[$p.Name]); $w.WriteEndElement()
        # A switch shows as [-Force] in SYNTAX: no value element there (platyPS writes none).
        if (-not ($p.SwitchParameter -and $InSyntax)) {
            $typeName = if ($p.SwitchParameter) { 'SwitchParameter' } else { Get-TypeName $p.ParameterType }
            $w.WriteStartElement('parameterValue', $command); $w.WriteAttributeString('required', ([string](-not $p.SwitchParameter)).ToLowerInvariant()); $w.WriteString($typeName); $w.WriteEndElement()
        }
        $type = [Nullable]::GetUnderlyingType($p.ParameterType) ?? $p.ParameterType
        $w.WriteStartElement('type', $dev); $w.WriteElementString('name', $maml, $type.FullName); $w.WriteEndElement()
        $w.WriteElementString('defaultValue', $dev, (Get-DefaultValue $instance $p))
        $w.WriteEndElement()
    }

    $w.WriteStartElement('syntax', $command)
    foreach ($set in $cmd.ParameterSets) {
        $w.WriteStartElement('syntaxItem', $command)
        $w.WriteElementString('name', $maml, $cmd.Name)
        foreach ($sp in $set.Parameters | Where-Object { $_.Name -notin $common }) {
            & $writeParam $cmd.Parameters[$sp.Name] ($cmd.Parameters[$sp.Name].ParameterSets[$set.Name] ?? $cmd.Parameters[$sp.Name].ParameterSets['__AllParameterSets']) -InSyntax
        }
        $w.WriteEndElement()
    }
    $w.WriteEndElement()

    $w.WriteStartElement('parameters', $command)
    foreach ($p in $params | Sort-Object Name) { & $writeParam $p $null }
    $w.WriteEndElement()

    foreach ($kind in 'inputTypes', 'returnValues') {
        $text = if ($kind -eq 'inputTypes') { $doc.Inputs } else { $doc.Outputs }
        $types = if ($kind -eq 'returnValues') { @($cmd.OutputType.Name) } else { @() }
        if (-not $text -and -not $types) { continue }
        $w.WriteStartElement($kind, $command)
        $w.WriteStartElement(($kind -eq 'inputTypes') ? 'inputType' : 'returnValue', $command)
        $w.WriteStartElement('type', $dev); $w.WriteElementString('name', $maml, ($types -join ', ')); $w.WriteEndElement()
        $w.WriteStartElement('description', $maml); Write-Paras $text; $w.WriteEndElement()
        $w.WriteEndElement(); $w.WriteEndElement()
    }

    if ($doc.Notes) {
        $w.WriteStartElement('alertSet', $maml); $w.WriteStartElement('alert', $maml); Write-Paras $doc.Notes; $w.WriteEndElement(); $w.WriteEndElement()
    }

    $w.WriteStartElement('examples', $command)
    foreach ($ex in $doc.Examples) {
        $w.WriteStartElement('example', $command)
        $w.WriteElementString('title', $maml, "-------------------------- $($ex.Title) --------------------------")
        $w.WriteElementString('code', $dev, $ex.Code)
        $w.WriteStartElement('remarks', $dev); Write-Paras $ex.Remarks; $w.WriteEndElement()
        $w.WriteEndElement()
    }
    $w.WriteEndElement()
    $w.WriteStartElement('relatedLinks', $maml)
    $online = "$OnlineBase$($cmd.Name).md"
    if ($cmd.HelpUri -ne $online) { $problems.Add("$($cmd.Name): HelpUri is '$($cmd.HelpUri)', expected $online") }
    $w.WriteStartElement('navigationLink', $maml); $w.WriteElementString('linkText', $maml, 'Online Version:'); $w.WriteElementString('uri', $maml, $online); $w.WriteEndElement()
    $w.WriteStartElement('navigationLink', $maml); $w.WriteElementString('linkText', $maml, 'about_Forkd'); $w.WriteElementString('uri', $maml, ''); $w.WriteEndElement()
    $w.WriteEndElement()
    $w.WriteEndElement()
}
$w.WriteEndElement()
$w.WriteEndDocument()
$w.Dispose()
Remove-Module $module.Name -Force
if ($problems.Count) { throw "help is incomplete:`n  " + ($problems -join "`n  ") }
