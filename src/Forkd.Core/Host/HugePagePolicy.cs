using System.Runtime.InteropServices;

namespace Forkd.Core.Host;

/// <summary>
/// Starts processes with transparent huge pages turned off for them (<c>PR_SET_THP_DISABLE</c>, which a child
/// inherits across fork and exec). QEMU asks for huge pages on its TCG code buffer (<c>MADV_HUGEPAGE</c>), so every
/// 2 MiB of it a child touches at all is a whole 2 MiB of private memory: most of an idle child's VMM overhead.
/// The flag is ours only while the process starts; the engine's own memory keeps the system's policy.
/// </summary>
public static partial class HugePagePolicy
{
    private const int PrSetThpDisable = 41;
    private const int PrGetThpDisable = 42;
    private static readonly Lock Gate = new();

    /// <summary>Runs <paramref name="start"/> (a Process.Start) so the process it starts has no transparent huge pages.</summary>
    public static T StartWithoutHugePages<T>(Func<T> start)
    {
        ArgumentNullException.ThrowIfNull(start);
        lock (Gate)
        {
            var before = prctl(PrGetThpDisable, 0, 0, 0, 0);
            var set = before == 0 && prctl(PrSetThpDisable, 1, 0, 0, 0) == 0;
            try
            {
                return start();
            }
            finally
            {
                if (set)
                {
                    _ = prctl(PrSetThpDisable, 0, 0, 0, 0);
                }
            }
        }
    }

    /// <summary>Whether a running process has transparent huge pages turned off (<c>THP_enabled: 0</c> in its status).</summary>
    public static bool? IsDisabledFor(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("THP_enabled:", StringComparison.Ordinal))
                {
                    return line.EndsWith('0');
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);
}
