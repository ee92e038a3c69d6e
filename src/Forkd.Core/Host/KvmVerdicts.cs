using System.Security.Cryptography;
using System.Text.Json;

namespace Forkd.Core.Host;

/// <summary>Whether a kernel booted under KVM on this host boot, and what was seen.</summary>
public sealed record KvmVerdict(bool Booted, string Detail);

/// <summary>
/// The one cache of "does KVM boot this kernel here": keyed by the kernel's content and the host's boot id, so a
/// reboot (new host kernel, module options) or another guest kernel asks again. The host check and the
/// accelerator choice of a snapshot read and write the same entries, so they cannot disagree.
/// </summary>
public static class KvmVerdicts
{
    public static string FileFor(string cacheDirectory, string kernelPath) =>
        Path.Combine(cacheDirectory, "kvm-verdicts", $"{KernelHash(kernelPath)}-{BootId()}.json");

    public static KvmVerdict? Read(string cacheDirectory, string kernelPath)
    {
        try
        {
            return JsonSerializer.Deserialize<KvmVerdict>(File.ReadAllText(FileFor(cacheDirectory, kernelPath)));
        }
        catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static void Write(string cacheDirectory, string kernelPath, KvmVerdict verdict)
    {
        var file = FileFor(cacheDirectory, kernelPath);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            var temp = $"{file}.{Environment.ProcessId}.tmp";
            File.WriteAllText(temp, JsonSerializer.Serialize(verdict));
            File.Move(temp, file, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // an uncached verdict is still a verdict
        }
    }

    private static string KernelHash(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..16];
    }

    private static string BootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
