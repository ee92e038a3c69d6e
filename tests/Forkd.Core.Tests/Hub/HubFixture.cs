using System.Diagnostics;
using System.Security.Cryptography;
using Forkd.Core.Host;
using Forkd.Core.Store;

namespace Forkd.Core.Tests.Hub;

/// <summary>A throw-away data dir with helpers to make snapshots and run the real tar/zstd/python3 tools.</summary>
public sealed class HubSandbox : IDisposable
{
    public HubSandbox()
    {
        Root = Path.Combine(Path.GetTempPath(), "forkd-hubtest-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
        Directory.CreateDirectory(Root);
        Paths = NewDataDir("data");
    }

    public string Root { get; }

    public ForkdPaths Paths { get; }

    public ForkdPaths NewDataDir(string name)
    {
        var tmp = Path.Combine(Root, name + "-tmp");
        Directory.CreateDirectory(tmp);
        return new ForkdPaths(Path.Combine(Root, name), tmp);
    }

    /// <summary>A snapshot whose memory image has zero pages, text pages and random pages, plus forkd-style metadata.</summary>
    public static string MakeSnapshot(ForkdPaths paths, string tag, int pages = 256, string? metadataJson = null)
    {
        var dir = paths.SnapshotDirectory(tag);
        Directory.CreateDirectory(dir);
        var rng = new Random(42);
        var memory = new byte[pages * 4096];
        for (var p = 0; p < pages; p++)
        {
            var page = memory.AsSpan(p * 4096, 4096);
            switch (p % 10)
            {
                case < 6: break; // zero
                case < 8:
                    for (var i = 0; i < page.Length; i++)
                    {
                        page[i] = (byte)"forkd warm page "[i % 16];
                    }

                    break;
                default:
                    rng.NextBytes(page);
                    break;
            }
        }

        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.Memory), memory);
        var vmstate = new byte[14540];
        rng.NextBytes(vmstate);
        File.WriteAllBytes(Path.Combine(dir, SnapshotFiles.VmState), vmstate);
        File.WriteAllText(Path.Combine(dir, SnapshotFiles.Metadata), metadataJson ??
            $"{{\n  \"vmstate\": \"/home/someone/.local/share/forkd/snapshots/{tag}/vmstate\",\n  \"memory\": \"/home/someone/.local/share/forkd/snapshots/{tag}/memory.bin\",\n  \"volumes\": []\n}}");
        return dir;
    }

    /// <summary>Runs a shell pipeline (bash -c) and returns stdout; throws with stderr when it fails.</summary>
    public static string Sh(string script, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo("bash", ["-c", "set -euo pipefail; " + script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"`{script}` failed ({p.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }

    public static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));

    /// <summary>Names left in the staging and temp roots (work dirs a failed import must not leave).</summary>
    public static IReadOnlyList<string> Leftovers(ForkdPaths paths)
    {
        var result = new List<string>();
        foreach (var root in new[] { paths.StagingDirectory, paths.TempDirectory })
        {
            if (Directory.Exists(root))
            {
                result.AddRange(Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName)
                    .Where(n => WorkDirectories.Classify(n!, WorkDirRoot.Staging) is not null || WorkDirectories.Classify(n!, WorkDirRoot.Temp) is not null)!);
            }
        }

        return result;
    }

    public void Dispose()
    {
        try
        {
            SafeDelete.Delete(Root);
        }
        catch (IOException)
        {
        }
    }
}
