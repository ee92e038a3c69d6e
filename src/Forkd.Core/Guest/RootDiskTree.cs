using System.Text;

namespace Forkd.Core.Guest;

/// <summary>Assembling the root disk's tree and its boot initramfs (file work only; the builder runs the tools).</summary>
internal static class RootDiskTree
{
    private const UnixFileMode Executable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static readonly string[] CommandDirectories = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"];

    /// <summary>
    /// /sbin/forkd-init (the same init as initramfs images; the root-disk stage switches to it), the agent,
    /// /etc/forkd-recipe.env and the recipe's files.
    /// </summary>
    public static void AddGuestFiles(string root, GuestSources sources, RootDiskRecipe recipe)
    {
        Copy(sources.InitPath, Path.Combine(root, "sbin", "forkd-init"), Executable);
        Copy(sources.AgentPath, Path.Combine(root, GuestSources.AgentFileName), Executable);
        foreach (var (inImage, source) in recipe.RootDisk!.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var target = Path.GetFullPath(Path.Combine(root, inImage.TrimStart('/')));
            if (!target.StartsWith(Path.GetFullPath(root) + "/", StringComparison.Ordinal))
            {
                throw new ForkdException("InvalidRecipe", ForkdErrorKind.InvalidData, $"recipe file target '{inImage}' leaves the image", inImage);
            }

            Copy(Path.Combine(sources.GuestDirectory, source), target, Executable);
        }

        var env = new StringBuilder("# written by Forkd's root-disk builder for recipe " + recipe.Name + "\n");
        foreach (var (k, v) in recipe.Env.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            env.Append(k).Append("=\"").Append(v).Append("\"\n");
        }

        File.WriteAllText(Path.Combine(root, "etc", "forkd-recipe.env"), env.ToString());
        File.WriteAllText(Path.Combine(root, "etc", "hostname"), "forkd\n");
    }

    /// <summary>
    /// Debian's essential set lacks what init uses (mount, insmod, ip, ifconfig, route): busybox applets fill
    /// the gaps in /usr/local/sbin, never shadowing a command a package installed.
    /// </summary>
    public static async Task AddMissingBusyboxCommandsAsync(string root, CancellationToken cancellationToken)
    {
        var busybox = Path.Combine(root, "bin", "busybox");
        if (!File.Exists(busybox))
        {
            throw new ForkdException("BusyboxMissing", ForkdErrorKind.InvalidData, "the root disk has no /bin/busybox (add busybox-static to rootDisk.packages)", busybox);
        }

        var list = await ToolRunner.RunCheckedAsync("BusyboxFailed", busybox, ["--list"], root, cancellationToken).ConfigureAwait(false);
        var target = Path.Combine(root, "usr", "local", "sbin");
        Directory.CreateDirectory(target);
        foreach (var applet in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(a => a != "busybox" && !a.Contains('/', StringComparison.Ordinal)))
        {
            if (!CommandDirectories.Any(d => Path.Exists(Path.Combine(root, d, applet)) || new FileInfo(Path.Combine(root, d, applet)).LinkTarget is not null))
            {
                File.CreateSymbolicLink(Path.Combine(target, applet), "/bin/busybox");
            }
        }
    }

    /// <summary><c>name version</c> of every installed package, from dpkg's status file.</summary>
    public static IReadOnlyList<string> InstalledPackages(string root)
    {
        var status = Path.Combine(root, "var", "lib", "dpkg", "status");
        if (!File.Exists(status))
        {
            return [];
        }

        var result = new List<string>();
        foreach (var stanza in File.ReadAllText(status).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null, version = null;
            var installed = false;
            foreach (var line in stanza.Split('\n'))
            {
                if (line.StartsWith("Package: ", StringComparison.Ordinal))
                {
                    name = line[9..].Trim();
                }
                else if (line.StartsWith("Version: ", StringComparison.Ordinal))
                {
                    version = line[9..].Trim();
                }
                else if (line.StartsWith("Status: ", StringComparison.Ordinal))
                {
                    installed = line.EndsWith(" installed", StringComparison.Ordinal);
                }
            }

            if (installed && name is not null)
            {
                result.Add($"{name} {version}");
            }
        }

        return [.. result.Order(StringComparer.Ordinal)];
    }

    /// <summary>apt's caches and lists: large, and nothing in a sandbox uses them.</summary>
    public static void Slim(string root)
    {
        foreach (var dir in new[] { "var/cache/apt", "var/lib/apt/lists", "var/log" })
        {
            var full = Path.Combine(root, dir);
            if (!Directory.Exists(full))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(full, "*", SearchOption.AllDirectories))
            {
                if (new FileInfo(file).LinkTarget is null)
                {
                    File.Delete(file);
                }
            }
        }
    }

    /// <summary>
    /// The boot initramfs: busybox (from the root disk), the virtio, block and overlay modules, the
    /// common init and the root-disk stage it sources. A few MB, so it unpacks in well under a second.
    /// </summary>
    public static async Task<string> BuildInitramfsTreeAsync(string root, string kernelTree, string initramfsRoot, GuestSources sources,
        CancellationToken cancellationToken)
    {
        foreach (var dir in new[] { "bin", "dev", "proc", "sys", "tmp", "run", "etc/forkd", "lib/modules" })
        {
            Directory.CreateDirectory(Path.Combine(initramfsRoot, dir));
        }

        Copy(Path.Combine(root, "bin", "busybox"), Path.Combine(initramfsRoot, "bin", "busybox"), Executable);
        await GuestRootFs.AddBusyboxAppletsAsync(initramfsRoot, cancellationToken).ConfigureAwait(false);
        var version = GuestRootFs.CopyModules(kernelTree, initramfsRoot);
        foreach (var needed in new[] { "virtio_blk", "overlay" })
        {
            if (!File.Exists(Path.Combine(initramfsRoot, "lib", "modules", needed + ".ko")))
            {
                throw new ForkdException("InvalidKernelPackage", ForkdErrorKind.InvalidData,
                    $"kernel {version} has no {needed} module: the root disk could not be mounted", kernelTree);
            }
        }

        Copy(sources.InitPath, Path.Combine(initramfsRoot, "init"), Executable);
        Copy(Path.Combine(sources.GuestDirectory, RootDiskBuilder.RootDiskStageFile), Path.Combine(initramfsRoot, "etc", "forkd", "rootdisk.sh"), Executable);
        return version;
    }

    private static void Copy(string from, string to, UnixFileMode mode)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.Copy(from, to, overwrite: true);
        File.SetUnixFileMode(to, mode);
    }
}
