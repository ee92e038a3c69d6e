using System.Diagnostics;
using System.Text;
using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>Archives from CpioWriter read back by GNU cpio (an independent implementation).</summary>
public sealed class CpioWriterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("forkd-test-cpio-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<string> CpioAsync(string workDir, string archive, params string[] args)
    {
        var info = new ProcessStartInfo("cpio") { WorkingDirectory = workDir, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var errors = p.StandardError.ReadToEndAsync();
        await using (var input = File.OpenRead(archive))
        {
            await input.CopyToAsync(p.StandardInput.BaseStream);
        }

        p.StandardInput.Close();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, await errors);
        return await output;
    }

    [Fact]
    public async Task Files_dirs_symlinks_and_modes_survive_a_round_trip_through_cpio()
    {
        var archive = Path.Combine(_dir, "a.cpio");
        var odd = new byte[4099];
        new Random(7).NextBytes(odd);
        using (var writer = new CpioWriter(File.Create(archive)))
        {
            writer.AddDirectory("etc", 0x1ED, 0);
            writer.AddFile("etc/hello", 0x1A4, 1_700_000_000, Encoding.UTF8.GetBytes("hi\n"));
            writer.AddFile("init", 0x1ED, 0, odd);
            writer.AddSymlink("sh", "bin/busybox", 0);
            writer.AddFile("empty", 0x180, 0, []);
            writer.Finish();
        }

        var extract = Directory.CreateDirectory(Path.Combine(_dir, "x")).FullName;
        await CpioAsync(extract, archive, "-i", "-d", "--no-absolute-filenames", "--quiet");

        Assert.Equal("hi\n", await File.ReadAllTextAsync(Path.Combine(extract, "etc", "hello")));
        Assert.Equal(odd, await File.ReadAllBytesAsync(Path.Combine(extract, "init")));
        Assert.Equal("bin/busybox", new FileInfo(Path.Combine(extract, "sh")).LinkTarget);
        Assert.Empty(await File.ReadAllBytesAsync(Path.Combine(extract, "empty")));
        Assert.Equal((UnixFileMode)0x1ED, File.GetUnixFileMode(Path.Combine(extract, "init")));
        Assert.Equal(0, new FileInfo(archive).Length % 512);
    }

    [Fact]
    public async Task Device_nodes_are_listed_with_their_numbers_without_needing_root_to_write()
    {
        var archive = Path.Combine(_dir, "d.cpio");
        using (var writer = new CpioWriter(File.Create(archive)))
        {
            writer.AddDirectory("dev", 0x1ED, 0);
            writer.AddCharDevice("dev/console", 0x180, 0, 5, 1);
            writer.Finish();
        }

        var listing = await CpioAsync(_dir, archive, "-t", "-v", "--quiet");

        Assert.Matches(@"crw-------\s+1\s+root\s+root\s+5,\s+1 .* dev/console", listing);
    }

    [Fact]
    public async Task A_tree_is_written_in_name_order_so_the_same_tree_gives_the_same_bytes()
    {
        var tree = Directory.CreateDirectory(Path.Combine(_dir, "t")).FullName;
        foreach (var name in new[] { "b", "a", "c/z", "c/y" })
        {
            var file = Path.Combine(tree, name);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, name);
        }

        byte[] Build()
        {
            using var memory = new MemoryStream();
            using (var writer = new CpioWriter(memory, leaveOpen: true))
            {
                writer.AddTree(tree);
                writer.Finish();
            }

            return memory.ToArray();
        }

        var first = Build();
        var archive = Path.Combine(_dir, "t.cpio");
        await File.WriteAllBytesAsync(archive, first);
        var listing = await CpioAsync(_dir, archive, "-t", "--quiet");

        Assert.Equal(first, Build());
        Assert.Equal(["a", "b", "c", "c/y", "c/z"], listing.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Duplicate_and_absolute_names_are_refused()
    {
        using var writer = new CpioWriter(new MemoryStream());
        writer.AddFile("x", 0x1A4, 0, []);

        Assert.Throws<ArgumentException>(() => writer.AddFile("x", 0x1A4, 0, []));
        Assert.Throws<ArgumentException>(() => writer.AddFile("/abs", 0x1A4, 0, []));
    }
}
