<#
.SYNOPSIS
  Starts pdfocr-watcher when you log in to Windows: puts a shortcut in your Startup folder
  (with -Remove, takes it away). No administrator rights needed.

.DESCRIPTION
  `pdfocr-watcher autostart enable` does the same from the program itself; this script is for
  set-ups made by hand or by an installer. The shortcut runs a launcher without a console
  window, so nothing flashes up at logon: pdfocr-watcher-gui.exe (the gui script that pip and
  pipx install), or pythonw.exe -m watcher, or the program given with -Program (for example
  the one-file build, pdfocr-watcher.exe, built windowed).

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File pdfocr-watcher-startup.ps1
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File pdfocr-watcher-startup.ps1 -Config D:\rules\config.toml
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File pdfocr-watcher-startup.ps1 -Remove
#>
param(
    [string]$Config = "",   # a rules file other than the default one
    [string]$Program = "",  # the program to start, instead of looking for one on PATH
    [switch]$Remove
)
$ErrorActionPreference = "Stop"

# The same file `pdfocr-watcher autostart enable` writes, so either can undo the other.
$shortcut = Join-Path ([Environment]::GetFolderPath("Startup")) "pdfocr-watcher.lnk"

if ($Remove) {
    if (Test-Path -LiteralPath $shortcut) {
        Remove-Item -LiteralPath $shortcut
        "Removed ${shortcut}. A running watcher keeps running until you quit it from its icon."
    } else {
        "No shortcut at ${shortcut}: nothing to remove."
    }
    exit 0
}

$arguments = @()
if ($Program) {
    $target = (Resolve-Path -LiteralPath $Program).Path
} else {
    $gui = Get-Command "pdfocr-watcher-gui.exe" -ErrorAction SilentlyContinue
    $pythonw = Get-Command "pythonw.exe" -ErrorAction SilentlyContinue
    if ($gui) {
        $target = $gui.Source
    } elseif ($pythonw) {
        # Only right if this Python is the one pdfocr-watcher is installed into.
        $target = $pythonw.Source
        $arguments += @("-m", "watcher")
    } else {
        throw "Neither pdfocr-watcher-gui.exe nor pythonw.exe is on PATH: install pdfocr-watcher (pipx install pdfocr-watcher) or pass -Program."
    }
}
$arguments += "run"
if ($Config) {
    $arguments += @("--config", ('"' + (Resolve-Path -LiteralPath $Config).Path + '"'))
}

$shell = New-Object -ComObject WScript.Shell
$link = $shell.CreateShortcut($shortcut)
$link.TargetPath = $target
$link.Arguments = $arguments -join " "
$link.WorkingDirectory = $HOME
$link.Description = "pdfocr-watcher: converts PDFs dropped into watched folders"
$link.Save()
"Created $shortcut"
"  runs: $target $($link.Arguments)"
"It starts at your next login; to start it now, double-click the shortcut."
