using System.Globalization;
using System.Text;

namespace Forkd.Core.Store;

/// <summary>
/// The snapshot tag rule: <c>^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$</c>, ASCII only. A tag is always a
/// single path component, so it can never escape the snapshot store (forkd 0.1.0–0.1.2 let
/// <c>--tag ../../etc</c> through).
/// </summary>
public static class TagRule
{
    public const int MaxLength = 64;

    public const string Pattern = "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$";

    /// <summary>Returns null when <paramref name="tag"/> is valid, else the reason, naming the offending character.</summary>
    public static string? Check(string? tag)
    {
        if (string.IsNullOrEmpty(tag))
        {
            return "invalid tag: empty";
        }

        if (tag.Length > MaxLength)
        {
            return $"invalid tag '{Printable(tag)}': longer than {MaxLength} characters (got {tag.Length})";
        }

        if (!IsStartChar(tag[0]))
        {
            return $"invalid tag '{Printable(tag)}': must start with a letter, digit or '_' (got {Describe(tag[0])} at position 1). " +
                   "Tags cannot start with '.', '-' or a path separator.";
        }

        for (var i = 1; i < tag.Length; i++)
        {
            if (!IsBodyChar(tag[i]))
            {
                return $"invalid tag '{Printable(tag)}': illegal character {Describe(tag[i])} at position {i + 1}. " +
                       "Allowed: ASCII letters, digits, '.', '_', '-'.";
            }
        }

        return null;
    }

    public static bool IsValid(string? tag) => Check(tag) is null;

    /// <summary>Throws <see cref="ForkdException"/> with ErrorId <c>InvalidTag</c> unless the tag is valid.</summary>
    public static string Validate(string? tag)
    {
        var problem = Check(tag);
        if (problem is not null)
        {
            throw new ForkdException("InvalidTag", ForkdErrorKind.InvalidArgument, problem, tag)
            {
                Hint = "Use 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter, digit or '_'.",
            };
        }

        return tag!;
    }

    private static bool IsStartChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private static bool IsBodyChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-';

    private static string Describe(char c)
    {
        var code = ((int)c).ToString("X4", CultureInfo.InvariantCulture);
        return char.IsControl(c) || c > 0x7e
            ? $"U+{code}"
            : $"'{c}' (U+{code})";
    }

    // Keep control characters out of messages: a NUL or newline in a tag must not garble the console.
    private static string Printable(string tag)
    {
        var sb = new StringBuilder(tag.Length);
        foreach (var c in tag)
        {
            sb.Append(char.IsControl(c) ? '?' : c);
        }

        return sb.ToString();
    }
}
