using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// Firecracker's published API description (firecracker-api.yaml, swagger 2.0), loaded as JSON,
/// with just enough of a schema validator to judge our requests: known path and method, body
/// against the definition (required properties, types, enums, bounds, no unknown properties).
/// </summary>
public sealed class FirecrackerApiDescription
{
    private readonly JsonObject _paths;
    private readonly JsonObject _definitions;

    private FirecrackerApiDescription(JsonObject root)
    {
        Root = root;
        _paths = (JsonObject)root["paths"]!;
        _definitions = (JsonObject)root["definitions"]!;
    }

    public JsonObject Root { get; }

    public string Version => (string)Root["info"]!["version"]!;

    private static readonly Lazy<FirecrackerApiDescription> Shared = new(() => Load(Path.Combine(AppContext.BaseDirectory, "Firecracker", "firecracker-api.yaml")));

    public static FirecrackerApiDescription Published => Shared.Value;

    public static FirecrackerApiDescription Load(string yamlPath)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(yamlPath))
        {
            stream.Load(reader);
        }

        return new FirecrackerApiDescription((JsonObject)ToJson(stream.Documents[0].RootNode)!);
    }

    /// <summary>The operation for a request, with the template it matched and the path parameters.</summary>
    public (string Template, JsonObject Operation, Dictionary<string, string> PathParameters)? Find(string method, string path)
    {
        foreach (var (template, node) in _paths)
        {
            var parameters = Match(template, path);
            if (parameters is not null && node is JsonObject ops && ops[method.ToLowerInvariant()] is JsonObject op)
            {
                return (template, op, parameters);
            }
        }

        return null;
    }

    /// <summary>The body schema of an operation, or null when it takes no body.</summary>
    public static JsonObject? BodySchema(JsonObject operation, out bool required)
    {
        required = false;
        foreach (var p in operation["parameters"] as JsonArray ?? [])
        {
            if ((string?)p!["in"] == "body")
            {
                required = (bool?)p["required"] ?? false;
                return (JsonObject)p["schema"]!;
            }
        }

        return null;
    }

    public JsonObject Definition(string name) => (JsonObject)_definitions[name]!;

    /// <summary>Every way <paramref name="value"/> breaks <paramref name="schema"/>; empty when it conforms.</summary>
    public List<string> Validate(JsonNode? value, JsonObject schema, string at = "body")
    {
        var errors = new List<string>();
        ValidateInto(value, schema, at, errors);
        return errors;
    }

    private void ValidateInto(JsonNode? value, JsonObject schema, string at, List<string> errors)
    {
        if (schema["$ref"] is JsonValue reference)
        {
            var name = ((string)reference!).Replace("#/definitions/", "", StringComparison.Ordinal);
            ValidateInto(value, Definition(name), at, errors);
            return;
        }

        var type = (string?)schema["type"];
        switch (type)
        {
            case "object":
            case null when schema["properties"] is not null:
                if (value is not JsonObject obj)
                {
                    errors.Add($"{at}: expected an object");
                    return;
                }

                foreach (var req in schema["required"] as JsonArray ?? [])
                {
                    if (!obj.ContainsKey((string)req!))
                    {
                        errors.Add($"{at}: required property '{req}' is missing");
                    }
                }

                var props = schema["properties"] as JsonObject ?? [];
                foreach (var (name, child) in obj)
                {
                    if (props[name] is JsonObject propSchema)
                    {
                        ValidateInto(child, propSchema, $"{at}.{name}", errors);
                    }
                    else if (schema["additionalProperties"] is JsonObject extra)
                    {
                        ValidateInto(child, extra, $"{at}.{name}", errors);
                    }
                    else if (!((bool?)schema["additionalProperties"] ?? false))
                    {
                        // Firecracker's parser rejects fields it does not know.
                        errors.Add($"{at}: unknown property '{name}'");
                    }
                }

                return;
            case "string":
                if (value is not JsonValue s || !s.TryGetValue<string>(out var text))
                {
                    errors.Add($"{at}: expected a string");
                    return;
                }

                if (schema["enum"] is JsonArray options && !options.Any(o => (string?)o == text))
                {
                    errors.Add($"{at}: '{text}' is not one of {string.Join(", ", options.Select(o => (string?)o))}");
                }

                return;
            case "integer":
                if (value is not JsonValue i || i.GetValueKind() != System.Text.Json.JsonValueKind.Number
                    || !decimal.TryParse(i.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var number))
                {
                    errors.Add($"{at}: expected an integer");
                    return;
                }

                if (schema["minimum"] is JsonValue min && number < Num(min))
                {
                    errors.Add($"{at}: {number} is below the minimum {min}");
                }

                if (schema["maximum"] is JsonValue max && number > Num(max))
                {
                    errors.Add($"{at}: {number} is above the maximum {max}");
                }

                return;
            case "boolean":
                if (value is not JsonValue b || b.GetValueKind() is not (System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False))
                {
                    errors.Add($"{at}: expected true or false");
                }

                return;
            case "array":
                if (value is not JsonArray items)
                {
                    errors.Add($"{at}: expected an array");
                    return;
                }

                for (var n = 0; n < items.Count; n++)
                {
                    ValidateInto(items[n], (JsonObject)schema["items"]!, $"{at}[{n}]", errors);
                }

                return;
            default:
                errors.Add($"{at}: the description has a schema type '{type}' this validator does not know");
                return;
        }
    }

    private static decimal Num(JsonNode node) => decimal.Parse(node.ToJsonString(), NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static Dictionary<string, string>? Match(string template, string path)
    {
        var t = template.Trim('/').Split('/');
        var p = path.Trim('/').Split('/');
        if (t.Length != p.Length)
        {
            return null;
        }

        var parameters = new Dictionary<string, string>();
        for (var n = 0; n < t.Length; n++)
        {
            if (t[n].StartsWith('{') && t[n].EndsWith('}'))
            {
                if (p[n].Length == 0)
                {
                    return null;
                }

                parameters[t[n][1..^1]] = Uri.UnescapeDataString(p[n]);
            }
            else if (t[n] != p[n])
            {
                return null;
            }
        }

        return parameters;
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } scalar => Plain(scalar.Value ?? ""),
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => null,
    };

    private static JsonValue Plain(string text)
    {
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n))
        {
            return JsonValue.Create(n);
        }

        return text switch
        {
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ => JsonValue.Create(text),
        };
    }
}
