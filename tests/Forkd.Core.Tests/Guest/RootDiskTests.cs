using Forkd.Core.Guest;
using Forkd.Core.Host;
using Xunit;

namespace Forkd.Core.Tests.Big;

[Trait(Tiers.Name, Tiers.Full)]
public sealed class RootDiskTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static string Recipes => Path.Combine(RepoPaths.Root, "recipes");

    [Theory]
    [InlineData("nodejs", 512)]
    [InlineData("playwright-browser", 2048)]
    public void Big_recipes_have_a_root_disk_with_what_boot_and_agent_need(string name, int memory)
    {
        var recipe = RootDiskRecipe.Load(Recipes, name);
        Assert.NotNull(recipe.RootDisk);
        Assert.Equal(memory, recipe.MemoryMiB);
        Assert.Contains("python3", recipe.RootDisk!.Packages);
        Assert.Contains("busybox-static", recipe.RootDisk.Packages);
        Assert.Equal("node", recipe.Env["FORKD_AGENT_LANG"]);
        foreach (var source in recipe.RootDisk.Files.Values)
        {
            Assert.True(File.Exists(RepoPaths.Guest(source)), source);
        }

        Assert.True(RootDiskRecipe.HasRootDisk(Recipes, name));
        Assert.False(RootDiskRecipe.HasRootDisk(Recipes, "minimal"));
        Assert.False(RootDiskRecipe.HasRootDisk(Recipes, "../etc"));
    }

    [Fact]
    public void Kernel_command_line_names_the_root_device_and_passes_recipe_arguments()
    {
        var ext4 = RootDiskBuilder.KernelCommandLine(new RootDiskSpec { KernelArguments = "FORKD_WARMUP_READY_TIMEOUT=9" });
        Assert.Contains("forkd.root=vda", ext4, StringComparison.Ordinal);
        Assert.DoesNotContain("rootfstype", ext4, StringComparison.Ordinal);
        Assert.EndsWith(" FORKD_WARMUP_READY_TIMEOUT=9", ext4, StringComparison.Ordinal);
        Assert.Contains("forkd.rootfstype=squashfs", RootDiskBuilder.KernelCommandLine(new RootDiskSpec { Format = RootDiskFormat.Squashfs }),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task Busybox_fills_only_the_commands_no_package_installed()
    {
        var root = _tmp.Sub("root");
        Directory.CreateDirectory(Path.Combine(root, "bin"));
        Directory.CreateDirectory(Path.Combine(root, "usr", "bin"));
        File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"));
        File.SetUnixFileMode(Path.Combine(root, "bin", "busybox"), (UnixFileMode)0x1ED);
        File.WriteAllText(Path.Combine(root, "usr", "bin", "ls"), "#!/bin/sh\n");

        await RootDiskTree.AddMissingBusyboxCommandsAsync(root, CancellationToken.None);

        var sbin = Path.Combine(root, "usr", "local", "sbin");
        Assert.Equal("/bin/busybox", new FileInfo(Path.Combine(sbin, "insmod")).LinkTarget);
        Assert.Equal("/bin/busybox", new FileInfo(Path.Combine(sbin, "switch_root")).LinkTarget);
        Assert.False(Path.Exists(Path.Combine(sbin, "ls")) || new FileInfo(Path.Combine(sbin, "ls")).LinkTarget is not null);
    }

    [Fact]
    public void Installed_packages_come_from_dpkg_status()
    {
        var root = _tmp.Sub("r2");
        Directory.CreateDirectory(Path.Combine(root, "var", "lib", "dpkg"));
        File.WriteAllText(Path.Combine(root, "var", "lib", "dpkg", "status"),
            "Package: nodejs\nStatus: install ok installed\nVersion: 18.20.4\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n" +
            "Package: chromium\nStatus: install ok installed\nVersion: 156.0\n");
        Assert.Equal(["chromium 156.0", "nodejs 18.20.4"], RootDiskTree.InstalledPackages(root));
    }

    [SkippableFact]
    public void A_mounted_build_tree_is_detached_before_anything_deletes_it()
    {
        Skip.If(NativeFile.EffectiveUid != 0, "mounting a tmpfs needs root");

        var tree = _tmp.Sub("build", "root", "proc");
        var rc = System.Diagnostics.Process.Start("mount", ["-t", "tmpfs", "forkd-test", tree]);
        rc.WaitForExit();
        Assert.Equal(0, rc.ExitCode);
        File.WriteAllText(Path.Combine(tree, "inside"), "x");

        Assert.Equal([tree], Mounts.Under(Path.Combine(_tmp.Path, "build")));
        Assert.Equal(1, Mounts.DetachAllUnder(Path.Combine(_tmp.Path, "build")));
        Assert.Empty(Mounts.Under(Path.Combine(_tmp.Path, "build")));
        Assert.False(File.Exists(Path.Combine(tree, "inside"))); // the tmpfs is gone, not its contents deleted through it
    }
}
