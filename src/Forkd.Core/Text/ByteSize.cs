using System.Globalization;

namespace Forkd.Core.Text;

/// <summary>Human byte sizes the way forkd prints them (its <c>images</c> table and pack summaries).</summary>
public static class ByteSize
{
    private const long KiB = 1024;
    private const long MiB = KiB * 1024;
    private const long GiB = MiB * 1024;

    /// <summary>≥ 1 GiB: two decimals in GiB; ≥ 1 MiB: one decimal in MiB; else whole KiB (half to even).</summary>
    public static string Format(long bytes)
    {
        var c = CultureInfo.InvariantCulture;
        if (bytes >= GiB)
        {
            return string.Create(c, $"{Math.Round((double)bytes / GiB, 2, MidpointRounding.ToEven):F2} GiB");
        }

        if (bytes >= MiB)
        {
            return string.Create(c, $"{Math.Round((double)bytes / MiB, 1, MidpointRounding.ToEven):F1} MiB");
        }

        return string.Create(c, $"{Math.Round((double)bytes / KiB, 0, MidpointRounding.ToEven):F0} KiB");
    }
}
