using System.IO.Enumeration;
using System.Text;
using System.Text.Json.Nodes;
using Forkd.Core.Host;

namespace Forkd.Core.Guest;

/// <summary>The steps that turn extracted Debian packages into the guest's root filesystem tree.</summary>
internal static class GuestRootFs
{
    /// <summary>Removed from every image: documentation, headers, locales, caches.</summary>
    public static readonly IReadOnlyList<string> CommonPrune =
    [
        "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
        "usr/share/bug", "usr/share/gdb", "usr/share/bash-completion", "usr/include",
        "usr/lib/x86_64-linux-gnu/gconv", "sbin/ldconfig*", "etc/init.d", "etc/cron*",
        "**/__pycache__", "**/*.pyi", "**/*.pxd",
    ];

    /// <summary>Kernel modules packed into the image, in the order forkd-init loads them.</summary>
    public static readonly IReadOnlyList<string> Modules =
    [
        "virtio_ring", "virtio", "virtio_mmio", "virtio_console",
        "failover", "net_failover", "virtio_net",
        "vsock", "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport",
        // Volumes and root disks: block devices, and the RAM overlay over a read-only root disk.
        "virtio_blk", "overlay", "squashfs",
    ];

    /// <summary>Deletes every path matching a rule: <c>**/name</c> matches a name anywhere, other rules match the relative path (<c>*</c> spans folders).</summary>
    public static int Prune(string root, IEnumerable<string> rules)
    {
        var list = rules.ToList();
        var removed = 0;
        Walk(new DirectoryInfo(root), "");
        return removed;

        void Walk(DirectoryInfo dir, string prefix)
        {
            foreach (var entry in dir.EnumerateFileSystemInfos().ToList())
            {
                var rel = prefix.Length == 0 ? entry.Name : prefix + "/" + entry.Name;
                if (list.Any(rule => Matches(rule, rel, entry.Name)))
                {
                    SafeDelete.Delete(entry.FullName);
                    removed++;
                }
                else if (entry is DirectoryInfo sub && entry.LinkTarget is null)
                {
                    Walk(sub, rel);
                }
            }
        }
    }

    private static bool Matches(string rule, string relativePath, string name) =>
        rule.StartsWith("**/", StringComparison.Ordinal)
            ? FileSystemName.MatchesSimpleExpression(rule.AsSpan(3), name, ignoreCase: false)
            : FileSystemName.MatchesSimpleExpression(rule, relativePath, ignoreCase: false);

    public static void AddSymlinks(string root, IReadOnlyDictionary<string, string> links)
    {
        foreach (var (path, target) in links.OrderBy(l => l.Key, StringComparer.Ordinal))
        {
            var full = Path.Combine(root, path);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            if (File.Exists(full) || new FileInfo(full).LinkTarget is not null)
            {
                File.Delete(full);
            }

            File.CreateSymbolicLink(full, target);
        }
    }

    private static readonly string[] BinaryDirectories = ["bin", "sbin", "usr/bin", "usr/sbin"];

    /// <summary>Links every busybox applet in /bin that no package already provides.</summary>
    public static async Task AddBusyboxAppletsAsync(string root, CancellationToken cancellationToken)
    {
        var busybox = Path.Combine(root, "bin", "busybox");
        if (!File.Exists(busybox))
        {
            throw new ForkdException("BusyboxMissing", ForkdErrorKind.InvalidData, "the image has no /bin/busybox (add busybox-static)", busybox);
        }

        var list = await ToolRunner.RunCheckedAsync("BusyboxFailed", busybox, ["--list"], root, cancellationToken).ConfigureAwait(false);
        foreach (var applet in list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(a => a != "busybox" && !a.Contains('/', StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var taken = BinaryDirectories.Any(d => Path.Exists(Path.Combine(root, d, applet)) || new FileInfo(Path.Combine(root, d, applet)).LinkTarget is not null);
            if (!taken)
            {
                File.CreateSymbolicLink(Path.Combine(root, "bin", applet), "busybox");
            }
        }
    }

    /// <summary>Copies the wanted modules flat into /lib/modules/&lt;name&gt;.ko; returns the kernel version.</summary>
    public static string CopyModules(string kernelTree, string root)
    {
        var versions = Directory.GetDirectories(Path.Combine(kernelTree, "lib", "modules"));
        if (versions.Length != 1)
        {
            throw new ForkdException("InvalidKernelPackage", ForkdErrorKind.InvalidData,
                $"expected one lib/modules/<version> in the kernel package, found {versions.Length}", kernelTree);
        }

        var version = Path.GetFileName(versions[0]);
        var byName = Directory.EnumerateFiles(versions[0], "*.ko", SearchOption.AllDirectories)
            .GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var target = Path.Combine(root, "lib", "modules");
        Directory.CreateDirectory(target);
        foreach (var module in Modules)
        {
            if (byName.TryGetValue(module, out var file))
            {
                File.Copy(file, Path.Combine(target, module + ".ko"), overwrite: true);
            }
        }

        if (!File.Exists(Path.Combine(target, "virtio_console.ko")))
        {
            throw new ForkdException("InvalidKernelPackage", ForkdErrorKind.InvalidData,
                $"kernel {version} has no virtio_console module: the agent could not reach the host", kernelTree);
        }

        return version;
    }

    /// <summary>/init, the agent, the recipe env file and the mount points the init needs.</summary>
    public static void AddGuestFiles(string root, GuestSources sources, GuestRecipe recipe)
    {
        foreach (var dir in new[] { "proc", "sys", "dev", "tmp", "run", "root", "etc", "mnt" })
        {
            Directory.CreateDirectory(Path.Combine(root, dir));
        }

        const UnixFileMode Executable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        CopyExecutable(sources.InitPath, Path.Combine(root, "init"), Executable);
        CopyExecutable(sources.AgentPath, Path.Combine(root, GuestSources.AgentFileName), Executable);
        if (recipe.Env.Count > 0)
        {
            var env = new StringBuilder("# written by Forkd's image builder for recipe " + recipe.Name + "\n");
            foreach (var (k, v) in recipe.Env.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                env.Append(k).Append("=\"").Append(v).Append("\"\n");
            }

            File.WriteAllText(Path.Combine(root, "etc", "forkd-recipe.env"), env.ToString());
        }
    }

    private static void CopyExecutable(string from, string to, UnixFileMode mode)
    {
        File.Copy(from, to, overwrite: true);
        File.SetUnixFileMode(to, mode);
    }

    /// <summary>The ping reply of the image's own agent, run on the host through the image's own ld.so (no root, no chroot).</summary>
    public static async Task<JsonObject> SmokeTestAsync(string root, string pythonRelative, CancellationToken cancellationToken)
    {
        var (loader, env) = HostRunEnvironment(root);
        var result = await ToolRunner.RunAsync(loader.Path,
            [.. loader.Arguments, Path.Combine(root, pythonRelative), Path.Combine(root, GuestSources.AgentFileName), "--stdio", "--recipe-env", "/dev/null"],
            // At EOF the agent answers what it has read before it exits (AgentRequestThreadTests).
            root, cancellationToken, stdin: "{\"action\":\"ping\",\"id\":\"smoke\"}\n", environment: env).ConfigureAwait(false);
        var line = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        if (result.ExitCode != 0 || line is null || JsonNode.Parse(line) is not JsonObject reply || reply["pong"]?.GetValue<bool>() != true)
        {
            throw new ForkdException("ImageSmokeTestFailed", ForkdErrorKind.Failed,
                $"the image's agent did not answer a ping when run from the built tree (exit {result.ExitCode}): {result.Stderr.Trim()}", root)
            {
                Hint = "A library or Python module is probably missing from the recipe's package list.",
            };
        }

        return reply;
    }

    /// <summary>
    /// Byte-compiles the modules the agent imports (numpy included) as unchecked-hash .pyc files, so the
    /// guest does not compile them on every cold boot under TCG; the recorded file names are the guest's.
    /// </summary>
    public static async Task PrecompileAsync(string root, string pythonRelative, CancellationToken cancellationToken)
    {
        const string Script = """
            import importlib.util, os, py_compile, runpy, sys
            root, agent = sys.argv[1], sys.argv[2]
            runpy.run_path(agent, run_name="forkd_precompile")
            for module in list(sys.modules.values()):
                source = getattr(module, "__file__", None)
                if not source or not source.endswith(".py") or not source.startswith(root + "/"):
                    continue
                py_compile.compile(source, cfile=importlib.util.cache_from_source(source), dfile=source[len(root):],
                                   doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            """;
        var (loader, env) = HostRunEnvironment(root);
        await ToolRunner.RunCheckedAsync("ImagePrecompileFailed", loader.Path,
            [.. loader.Arguments, Path.Combine(root, pythonRelative), "-c", Script, root, Path.Combine(root, GuestSources.AgentFileName)],
            root, cancellationToken, environment: env).ConfigureAwait(false);
    }

    private static ((string Path, string[] Arguments) Loader, Dictionary<string, string> Env) HostRunEnvironment(string root)
    {
        var libs = string.Join(':', Path.Combine(root, "lib", "x86_64-linux-gnu"), Path.Combine(root, "usr", "lib", "x86_64-linux-gnu"));
        var loader = Path.Combine(root, "lib", "x86_64-linux-gnu", "ld-linux-x86-64.so.2");
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PYTHONHOME"] = Path.Combine(root, "usr"),
            ["PYTHONDONTWRITEBYTECODE"] = "1",
            ["PYTHONNOUSERSITE"] = "1",
            ["PYTHONPATH"] = "",
            ["FORKD_WARMUP_CMD"] = "",
            ["FORKD_AGENT_LANG"] = "",
        };
        return ((loader, ["--library-path", libs]), env);
    }
}
