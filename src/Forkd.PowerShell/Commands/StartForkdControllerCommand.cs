using System.Collections.Concurrent;
using System.Diagnostics;
using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Text.Json;
using Forkd.Core;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Runs the Forkd controller (forkd's REST API v1, metrics, MCP over HTTP) in the foreground until Ctrl+C.
/// The service is the helper executable controller/forkd-controller.dll in the module folder (Kestrel needs the
/// Microsoft.AspNetCore.App shared framework, which pwsh does not load); this cmdlet starts it, relays its
/// output and stops it with SIGTERM, which drains the requests in flight. Children stay running in the registry.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "ForkdController", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Start-ForkdController.md")]
[OutputType(typeof(void))]
public sealed class StartForkdControllerCommand : ForkdCmdlet
{
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Listen { get; set; } = "127.0.0.1:8889";

    /// <summary>A file holding the bearer token (the token itself never goes on a command line).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TokenFile { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CertificatePath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? KeyPath { get; set; }

    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? AuditLogPath { get; set; }

    [Parameter]
    [ValidateRange(1024, 1073741824)]
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    [Parameter]
    [ValidateRange(1, 1024)]
    public int MaxConcurrentForks { get; set; } = 4;

    [Parameter]
    [ValidateRange(1, 600)]
    public int DrainTimeoutSec { get; set; } = 30;

    /// <summary>Do not serve the MCP HTTP transport at /mcp.</summary>
    [Parameter]
    public SwitchParameter NoMcp { get; set; }

    protected override void ProcessRecord()
    {
        // Checked before ShouldProcess, so -WhatIf reports the error a real start would (the controller checks the
        // token's content when it reads it).
        if (TokenFile is not null)
        {
            var tokenPath = GetUnresolvedProviderPathFromPSPath(TokenFile);
            try
            {
                using var _ = File.OpenRead(tokenPath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                ThrowForkdError(new ForkdException("TokenFileUnreadable", ForkdErrorKind.InvalidArgument,
                    $"cannot read token file {tokenPath}: {ex.Message}", tokenPath, ex)
                { Hint = "head -c 32 /dev/urandom | base64 > TOKENFILE; chmod 600 TOKENFILE" }, tokenPath);
            }
        }

        if (!ShouldProcess(Listen, "Start the Forkd controller"))
        {
            return;
        }

        var args = new List<string> { "serve", "--listen", Listen, "--max-body-bytes", MaxRequestBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--max-concurrent-forks", MaxConcurrentForks.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--drain-seconds", DrainTimeoutSec.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        void AddPath(string option, string? value)
        {
            if (value is not null)
            {
                args.Add(option);
                args.Add(GetUnresolvedProviderPathFromPSPath(value));
            }
        }

        AddPath("--token-file", TokenFile);
        AddPath("--tls-cert", CertificatePath);
        AddPath("--tls-key", KeyPath);
        AddPath("--audit-log", AuditLogPath);
        if (NoMcp)
        {
            args.Add("--no-mcp");
        }

        try
        {
            ControllerLauncher.RunRelayed(this, args, TimeSpan.FromSeconds(DrainTimeoutSec + 10), StopToken);
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex, Listen);
        }
    }

    internal void Relay(string line) => WriteInformation(new HostInformationMessage { Message = line }, ["PSHOST"]);

    internal void RelayVerbose(string line) => WriteVerbose(line);
}

/// <summary>Finds and runs the forkd-controller helper with the .NET host that runs this pwsh.</summary>
internal static class ControllerLauncher
{
    public const string ErrorLinePrefix = "FORKD-ERROR ";

    public static ProcessStartInfo StartInfo(IEnumerable<string> args)
    {
        var moduleDir = Path.GetDirectoryName(typeof(ControllerLauncher).Assembly.Location) ?? ".";
        var dll = Path.Combine(moduleDir, "controller", "forkd-controller.dll");
        if (!File.Exists(dll))
        {
            throw new ForkdException("ControllerNotFound", ForkdErrorKind.NotFound, $"the controller is not installed: {dll} does not exist", dll)
            { Hint = "Build the module with ./build.ps1 Build (it publishes the controller into out/Forkd/controller)." };
        }

        // The runtime dir is <root>/shared/Microsoft.NETCore.App/<version>/; the controller needs ASP.NET Core beside it.
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = Path.Combine(root, "dotnet");
        if (!File.Exists(host))
        {
            host = "dotnet";
        }
        else if (!Directory.Exists(Path.Combine(root, "shared", "Microsoft.AspNetCore.App")))
        {
            throw new ForkdException("AspNetCoreRuntimeMissing", ForkdErrorKind.NotSupported,
                $"the controller needs the Microsoft.AspNetCore.App shared framework, which {root} does not have", root)
            { Hint = "Install the ASP.NET Core runtime 10 (apt-get install aspnetcore-runtime-10.0) or the .NET SDK." };
        }

        var start = new ProcessStartInfo(host) { UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        return start;
    }

    /// <summary>Runs the controller, relaying its stdout to the host, until it exits; Ctrl+C sends SIGTERM and waits for the drain.</summary>
    public static void RunRelayed(StartForkdControllerCommand cmdlet, IEnumerable<string> args, TimeSpan stopTimeout, CancellationToken stop)
    {
        var start = StartInfo(args);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var lines = new BlockingCollection<(bool Error, string Text)>();
        using var process = new Process { StartInfo = start };
        var open = 2;
        void OnLine(bool error, string? text)
        {
            try
            {
                if (text is not null)
                {
                    lines.Add((error, text), CancellationToken.None);
                }
                else if (Interlocked.Decrement(ref open) == 0)
                {
                    lines.CompleteAdding();
                }
            }
            catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException)
            {
                // output after Ctrl+C, when nobody relays any more
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(false, e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(true, e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        // SIGTERM to pwsh (systemd stopping the unit) is passed on, so the controller drains instead of being orphaned.
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            _ = Tmds.Linux.LibC.kill(process.Id, Tmds.Linux.LibC.SIGTERM);
        });
        ForkdException? reported = null;
        try
        {
            foreach (var (error, text) in lines.GetConsumingEnumerable(stop))
            {
                if (error && text.StartsWith(ErrorLinePrefix, StringComparison.Ordinal))
                {
                    reported = Parse(text[ErrorLinePrefix.Length..]);
                }
                else if (error)
                {
                    cmdlet.RelayVerbose(text);
                }
                else
                {
                    cmdlet.Relay(text);
                }
            }
        }
        catch (OperationCanceledException)
        {
            Terminate(process, stopTimeout);
            return;
        }

        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw reported ?? new ForkdException("ControllerFailed", ForkdErrorKind.Failed, $"forkd-controller exited with code {process.ExitCode}");
        }
    }

    /// <summary>SIGTERM (graceful: drains requests, leaves children running), then SIGKILL if it does not exit in time.</summary>
    public static void Terminate(Process process, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (process.HasExited)
        {
            return;
        }

        _ = Tmds.Linux.LibC.kill(process.Id, Tmds.Linux.LibC.SIGTERM);
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
    }

    private static ForkdException Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            var kind = Enum.TryParse<ForkdErrorKind>(r.GetProperty("kind").GetString(), out var k) ? k : ForkdErrorKind.Failed;
            return new ForkdException(r.GetProperty("error_id").GetString() ?? "ControllerFailed", kind, r.GetProperty("message").GetString() ?? json)
            { Hint = r.TryGetProperty("hint", out var h) && h.ValueKind == JsonValueKind.String ? h.GetString() : null };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return new ForkdException("ControllerFailed", ForkdErrorKind.Failed, json);
        }
    }
}
