using Forkd.Core.Host;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Vmm;

/// <summary>
/// A VMM process that can outlive the pwsh that started it: its own session (setsid), so Ctrl+C
/// in the terminal does not reach it; stdout and stderr in a console log file, not a pipe that
/// would break when we exit; optionally started inside a network namespace (<c>ip netns exec</c>
/// exec()s, so the pid we hold is the VMM's own).
/// </summary>
public sealed class DetachedVmmProcess : IDisposable
{
    // $1 = console log, the rest = argv. Every exec keeps the pid, so Process.Id is the VMM.
    private const string Launcher = "log=$1; shift; exec setsid \"$@\" >\"$log\" 2>&1 </dev/null";

    private readonly Process? _process;

    private DetachedVmmProcess(Process process)
    {
        _process = process;
        ProcessId = process.Id;
    }

    private DetachedVmmProcess(int pid)
    {
        ProcessId = pid;
    }

    public int ProcessId { get; }

    /// <summary>Starts <paramref name="argv"/> in <paramref name="workingDirectory"/>, detached.</summary>
    public static DetachedVmmProcess Start(IReadOnlyList<string> argv, string workingDirectory, string consoleLog, string? networkNamespace = null)
    {
        ArgumentNullException.ThrowIfNull(argv);
        string[] shell = ["-c", Launcher, "forkd-vmm", consoleLog];
        var start = ProcessRunner.StartInfo(new ProcessSpec("/bin/sh",
            [.. shell, .. networkNamespace is null ? [] : ProcessRunner.NetworkNamespacePrefix(networkNamespace), .. argv])
        {
            WorkingDirectory = workingDirectory,
            Capture = false,
        });

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception ex) when (ex is Win32Exception or InvalidOperationException)
        {
            throw new ForkdException("VmmStartFailed", ForkdErrorKind.Failed, $"cannot start {argv[0]}: {ex.Message}", argv[0], ex);
        }

        // Sandboxes go first when the host runs out of memory (as forkd does); best effort.
        try
        {
            File.WriteAllText($"/proc/{process.Id}/oom_score_adj", "500");
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return new DetachedVmmProcess(process);
    }

    /// <summary>A handle on a VMM started by another process (from the child registry).</summary>
    public static DetachedVmmProcess Attach(int pid) => new(pid);

    public bool HasExited => _process?.HasExited ?? !Directory.Exists($"/proc/{ProcessId}");

    /// <summary>SIGKILL, then wait until the process is gone (or a zombie of someone else).</summary>
    public async Task KillAsync(CancellationToken cancellationToken = default)
    {
        if (HasExited)
        {
            return;
        }

        _ = kill(ProcessId, SIGKILL);
        if (_process is not null)
        {
            await _process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        while (Directory.Exists($"/proc/{ProcessId}") && !IsZombie())
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
        }
    }

    private bool IsZombie()
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{ProcessId}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..];
            return state.StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }

    public override string ToString() => ProcessId.ToString(CultureInfo.InvariantCulture);

    public void Dispose() => _process?.Dispose();
}
