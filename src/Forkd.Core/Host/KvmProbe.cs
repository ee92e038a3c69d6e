using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using static Tmds.Linux.LibC;

namespace Forkd.Core.Host;

/// <summary>
/// Whether KVM here can really run a Linux guest. Opening /dev/kvm and even creating a VM proves
/// little (under kvm_pvm both work, yet a stock kernel dies with an emulation failure), so the
/// probe boots the guest kernel under QEMU with KVM, no root fs, and watches it reach the point
/// where it looks for one. The answer is cached per kernel and host kernel.
/// </summary>
public static class KvmProbe
{
    private const int KVM_GET_API_VERSION = 0xAE00;
    private static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(20);

    // Lines a kernel prints only once it is fully up and looking for its root fs or init.
    private static readonly string[] BootedMarkers = ["VFS: Unable to mount root fs", "Run /init as init process", "Freeing unused kernel"];

    public sealed record Result(bool Booted, string Detail);

    /// <summary>KVM_GET_API_VERSION on /dev/kvm (12 on every kernel since 2.6.22), or an explanation.</summary>
    public static unsafe (int? ApiVersion, string Detail) ApiVersion(string device = "/dev/kvm")
    {
        if (!File.Exists(device))
        {
            return (null, $"{device} does not exist");
        }

        var path = Encoding.UTF8.GetBytes(device + "\0");
        int fd;
        fixed (byte* p = path)
        {
            fd = open(p, O_RDWR | O_CLOEXEC);
        }

        if (fd < 0)
        {
            return (null, $"cannot open {device} (errno {errno})");
        }

        try
        {
            var version = ioctl(fd, KVM_GET_API_VERSION, 0);
            return version < 0 ? (null, "KVM_GET_API_VERSION failed") : (version, $"KVM API {version}");
        }
        finally
        {
            _ = close(fd);
        }
    }

    /// <summary>Boots <paramref name="kernel"/> with QEMU + KVM once per (kernel, host kernel); later calls read the cached answer.</summary>
    public static async Task<Result> BootAsync(string kernel, string cacheDirectory, bool refresh, CancellationToken cancellationToken)
    {
        if (!refresh && KvmVerdicts.Read(cacheDirectory, kernel) is { } cached)
        {
            return new Result(cached.Booted, cached.Detail + " (cached)");
        }

        var result = await RunAsync(kernel, cancellationToken).ConfigureAwait(false);
        KvmVerdicts.Write(cacheDirectory, kernel, new KvmVerdict(result.Booted, result.Detail));
        return result;
    }

    private static async Task<Result> RunAsync(string kernel, CancellationToken ct)
    {
        var start = ProcessRunner.StartInfo(new ProcessSpec("qemu-system-x86_64",
        [
            "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on", "-accel", "kvm", "-cpu", "host", "-m", "128M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel, "-append", "console=ttyS0 panic=-1 root=/dev/forkd-probe-none",
        ]));

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var output = new StringBuilder();
        var booted = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(line);
            }

            if (BootedMarkers.Any(m => line.Contains(m, StringComparison.Ordinal)))
            {
                booted.TrySetResult(true);
            }
        }

        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(BootLimit);
        var exited = process.WaitForExitAsync(limit.Token);
        try
        {
            await Task.WhenAny(booted.Task, exited).ConfigureAwait(false);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        ct.ThrowIfCancellationRequested();
        string text;
        lock (output)
        {
            text = output.ToString();
        }

        if (booted.Task.IsCompletedSuccessfully)
        {
            return new Result(true, $"a Linux kernel booted under KVM in {clock.Elapsed.TotalSeconds:0.0} s");
        }

        var error = text.Split('\n').FirstOrDefault(l => l.Contains("KVM internal error", StringComparison.Ordinal) || l.Contains("emulation failure", StringComparison.Ordinal)
            || l.Contains("qemu-system", StringComparison.Ordinal))?.Trim();
        return new Result(false, error is not null
            ? $"the kernel did not boot under KVM: {error}"
            : $"the kernel did not finish booting under KVM within {BootLimit.TotalSeconds:0} s");
    }
}
