using System.Security.Cryptography;
using System.Text;
using Forkd.Core;

namespace Forkd.Service.Hosting;

/// <summary>
/// The API token, read once from a file at start. Compared in constant time with no length oracle: both sides
/// are hashed to 32 bytes first (SHA-256), so the comparison never depends on either length
/// (forkd 0.1.3's compare returned early on a length mismatch, #162).
/// </summary>
public sealed class BearerToken
{
    public const int MinimumBytes = 16;

    private static readonly string[] Placeholders = ["REPLACE_ME", "CHANGE_ME", "CHANGEME", "REPLACEME"];

    private readonly byte[] _digest;

    private BearerToken(byte[] digest) => _digest = digest;

    public static BearerToken FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ForkdException("TokenFileUnreadable", ForkdErrorKind.InvalidArgument, $"cannot read token file {path}: {ex.Message}", path, ex);
        }

        return FromText(text.Trim(), path);
    }

    public static BearerToken FromText(string token, string source)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (token.Length == 0)
        {
            throw new ForkdException("TokenEmpty", ForkdErrorKind.InvalidArgument, $"token file {source} is empty", source)
            { Hint = "head -c 32 /dev/urandom | base64 > TOKENFILE; chmod 600 TOKENFILE" };
        }

        if (Placeholders.Any(p => token.StartsWith(p, StringComparison.OrdinalIgnoreCase)))
        {
            throw new ForkdException("TokenPlaceholder", ForkdErrorKind.InvalidArgument,
                $"token file {source} still holds a placeholder ({token[..Math.Min(token.Length, 10)]}…); refusing to start", source)
            { Hint = "head -c 32 /dev/urandom | base64 > TOKENFILE; chmod 600 TOKENFILE" };
        }

        var bytes = Encoding.UTF8.GetBytes(token);
        if (bytes.Length < MinimumBytes)
        {
            throw new ForkdException("TokenTooShort", ForkdErrorKind.InvalidArgument,
                $"token in {source} is {bytes.Length} bytes; at least {MinimumBytes} are required", source)
            { Hint = "head -c 32 /dev/urandom | base64 > TOKENFILE; chmod 600 TOKENFILE" };
        }

        return new BearerToken(SHA256.HashData(bytes));
    }

    /// <summary>True when <paramref name="presented"/> is the token; time depends on neither value nor length.</summary>
    public bool Matches(ReadOnlySpan<char> presented)
    {
        var max = Encoding.UTF8.GetMaxByteCount(presented.Length);
        var buffer = max <= 1024 ? stackalloc byte[max] : new byte[max];
        var length = Encoding.UTF8.GetBytes(presented, buffer);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(buffer[..length], digest);
        return CryptographicOperations.FixedTimeEquals(digest, _digest);
    }
}
