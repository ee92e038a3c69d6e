using System.Collections.Specialized;
using System.Text.Json;

namespace Forkd.Core.Engine;

/// <summary>
/// Turns the guest's JSON-encoded result into plain .NET values: numbers (long, else double), strings,
/// booleans, null, arrays (object[]) and objects (an ordered dictionary). forkd's string sentinels
/// for NaN and ±Infinity (and Python's bare non-standard literals) become the matching doubles.
/// </summary>
public static class GuestValue
{
    public static object? Decode(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var trimmed = json.Trim();
        switch (trimmed)
        {
            case "NaN":
                return double.NaN;
            case "Infinity":
                return double.PositiveInfinity;
            case "-Infinity":
                return double.NegativeInfinity;
            default:
                break;
        }

        try
        {
            using var doc = JsonDocument.Parse(ReplaceBareLiterals(trimmed));
            return Convert(doc.RootElement);
        }
        catch (JsonException)
        {
            return json; // not JSON after all: keep the text
        }
    }

    // forkd's sentinels for non-finite floats (JSON has none); bare literals from other agents map onto them too.
    public const string NaNMarker = "__js_NaN__";
    public const string PosInfMarker = "__js_Infinity__";
    public const string NegInfMarker = "__js_-Infinity__";

    // Python's json.dumps writes NaN/Infinity bare; rewrite them (outside strings) as marker strings.
    private static string ReplaceBareLiterals(string json)
    {
        if (!json.Contains("NaN", StringComparison.Ordinal) && !json.Contains("Infinity", StringComparison.Ordinal))
        {
            return json;
        }

        var sb = new System.Text.StringBuilder(json.Length + 16);
        var inString = false;
        for (var i = 0; i < json.Length; i++)
        {
            var c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length)
                {
                    sb.Append(json[++i]);
                }
                else if (c == '"')
                {
                    inString = false;
                }

                continue;
            }

            if (c == '"')
            {
                inString = true;
                sb.Append(c);
            }
            else if (string.CompareOrdinal(json, i, "NaN", 0, 3) == 0)
            {
                sb.Append(JsonSerializer.Serialize(NaNMarker));
                i += 2;
            }
            else if (string.CompareOrdinal(json, i, "-Infinity", 0, 9) == 0)
            {
                sb.Append(JsonSerializer.Serialize(NegInfMarker));
                i += 8;
            }
            else if (string.CompareOrdinal(json, i, "Infinity", 0, 8) == 0)
            {
                sb.Append(JsonSerializer.Serialize(PosInfMarker));
                i += 7;
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private static object? Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? (object)l : e.GetDouble(),
        JsonValueKind.String => e.GetString() switch
        {
            NaNMarker => double.NaN,
            PosInfMarker => double.PositiveInfinity,
            NegInfMarker => double.NegativeInfinity,
            var s => s,
        },
        JsonValueKind.Array => e.EnumerateArray().Select(Convert).ToArray(),
        JsonValueKind.Object => ToDictionary(e),
        _ => e.GetRawText(),
    };

    private static OrderedDictionary ToDictionary(JsonElement e)
    {
        var d = new OrderedDictionary(StringComparer.Ordinal);
        foreach (var p in e.EnumerateObject())
        {
            d[p.Name] = Convert(p.Value);
        }

        return d;
    }
}
