using System.Runtime.InteropServices;

namespace Forkd.Core.Host;

/// <summary>
/// <c>renameat2(2)</c>: the two renames a store needs to replace a directory with no instant where neither
/// exists (<c>RENAME_EXCHANGE</c>) and to install one without overwriting a concurrent install
/// (<c>RENAME_NOREPLACE</c>). .NET's Directory.Move offers neither.
/// </summary>
public static partial class AtomicRename
{
    private const int AtFdCwd = -100;
    private const uint RenameNoReplace = 1;
    private const uint RenameExchange = 2;

    /// <summary>Swaps two existing paths on one filesystem in one step: each name ends up naming the other's inode.</summary>
    public static void Exchange(string a, string b) => Rename(a, b, RenameExchange);

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/>, failing (EEXIST) when <paramref name="to"/> exists.</summary>
    public static void MoveNoReplace(string from, string to) => Rename(from, to, RenameNoReplace);

    private static void Rename(string from, string to, uint flags)
    {
        if (renameat2(AtFdCwd, from, AtFdCwd, to, flags) == 0)
        {
            return;
        }

        var errno = Marshal.GetLastPInvokeError();
        throw new IOException($"renameat2({from}, {to}) failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);
}
