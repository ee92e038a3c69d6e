using System.Diagnostics;

namespace Forkd.Core.Tests.Engine;

/// <summary>A real, idle QEMU (no guest: <c>-machine none -S</c>) whose command line names a work dir, as a child's VMM does.</summary>
internal static class RealVmm
{
    public static Process Start(string workDir, params string[] extra)
    {
        var qemu = Process.Start(new ProcessStartInfo("qemu-system-x86_64",
            ["-machine", "none", "-S", "-nodefaults", "-display", "none", "-name", Path.GetFileName(workDir),
             "-qmp", $"unix:{workDir}/qmp.sock,server=on,wait=off", .. extra])
        {
            RedirectStandardError = true,
        })!;
        var until = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(Path.Combine(workDir, "qmp.sock")) && DateTime.UtcNow < until && !qemu.HasExited)
        {
            Thread.Sleep(20);
        }

        return qemu;
    }
}
