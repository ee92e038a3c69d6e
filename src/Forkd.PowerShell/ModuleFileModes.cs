using System.Management.Automation;

namespace Forkd.PowerShell;

/// <summary>
/// A .nupkg (Install-PSResource, Save-PSResource) does not carry Unix file modes: guest/forkd-init arrives 0644.
/// The image builder sets the guest files' modes itself, so images never depend on this, but a user who runs or
/// inspects the installed guest files should find them as the repository has them. On import, restore the exec
/// bit where the install dir lets us; a read-only install (AllUsers) is left as it is.
/// </summary>
public sealed class ModuleFileModes : IModuleAssemblyInitializer
{
    private static readonly string[] Executables = ["guest/forkd-init"];

    private const UnixFileMode ExecuteBits = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    public void OnImport()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var moduleBase = Path.GetDirectoryName(typeof(ModuleFileModes).Assembly.Location);
        if (string.IsNullOrEmpty(moduleBase))
        {
            return;
        }

        foreach (var relative in Executables)
        {
            var file = Path.Combine(moduleBase, relative);
            try
            {
                if (File.Exists(file))
                {
                    var mode = File.GetUnixFileMode(file);
                    if ((mode & ExecuteBits) != ExecuteBits)
                    {
                        File.SetUnixFileMode(file, mode | ExecuteBits);
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Read-only install: nothing here depends on the bit.
            }
        }
    }
}
