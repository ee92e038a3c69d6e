using System.Diagnostics;
using System.Management.Automation;
using Forkd.Core;

namespace Forkd.PowerShell.Commands;

/// <summary>
/// Runs Forkd's MCP server on this session's stdin/stdout (the stdio transport) until the client closes it
/// or Ctrl+C. For an MCP client's configuration: <c>pwsh -NoProfile -Command "Import-Module Forkd; Start-ForkdMcpServer"</c>.
/// The HTTP transport is served by Start-ForkdController at /mcp.
/// </summary>
[Cmdlet(VerbsLifecycle.Start, "ForkdMcpServer", SupportsShouldProcess = true, HelpUri = HelpLinks.Base + "Start-ForkdMcpServer.md")]
[OutputType(typeof(void))]
public sealed class StartForkdMcpServerCommand : ForkdCmdlet
{
    protected override void ProcessRecord()
    {
        if (!ShouldProcess("stdio", "Start the Forkd MCP server"))
        {
            return;
        }

        try
        {
            // The helper inherits stdin/stdout/stderr: the protocol flows between it and the client directly.
            var start = ControllerLauncher.StartInfo(["mcp"]);
            using var process = Process.Start(start)
                ?? throw new ForkdException("ControllerFailed", ForkdErrorKind.Failed, "cannot start forkd-controller mcp");
            using (StopToken.Register(() => ControllerLauncher.Terminate(process, TimeSpan.FromSeconds(10))))
            {
                process.WaitForExit();
            }

            if (process.ExitCode != 0 && !StopToken.IsCancellationRequested)
            {
                throw new ForkdException("ControllerFailed", ForkdErrorKind.Failed, $"the MCP server exited with code {process.ExitCode}");
            }
        }
        catch (ForkdException ex)
        {
            ThrowForkdError(ex);
        }
    }
}
