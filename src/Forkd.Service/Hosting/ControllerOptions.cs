using System.Globalization;
using System.Net;
using Forkd.Core;

namespace Forkd.Service.Hosting;

/// <summary>
/// How the controller runs. Built from the command line (<c>forkd-controller serve --listen … --token-file …</c>) or
/// directly by tests. The token itself is never an option: only the path of the file that holds it.
/// </summary>
public sealed record ControllerOptions
{
    public const string DefaultListen = "127.0.0.1:8889";

    public IPEndPoint Listen { get; init; } = IPEndPoint.Parse(DefaultListen);

    public string? TokenFile { get; init; }

    public string? CertificatePath { get; init; }

    public string? KeyPath { get; init; }

    public string? AuditLogPath { get; init; }

    /// <summary>Largest request body accepted (413 above it). API bodies are small JSON.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1024 * 1024;

    /// <summary>Fork requests handled at once; more get 429 with Retry-After.</summary>
    public int MaxConcurrentForks { get; init; } = 4;

    /// <summary>exec/eval/ping requests handled at once; more get 429 with Retry-After.</summary>
    public int MaxConcurrentAgentCalls { get; init; } = 64;

    /// <summary>All requests in flight at once; more (and any arriving while draining) get 503 with Retry-After.</summary>
    public int MaxConcurrentRequests { get; init; } = 256;

    /// <summary>Children one fork request may ask for (forkd's sanity cap).</summary>
    public int MaxChildrenPerRequest { get; init; } = 1000;

    /// <summary>How long a stop waits for requests in flight to finish.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Serve the MCP HTTP transport at /mcp on the same host (behind the same bearer auth).</summary>
    public bool Mcp { get; init; } = true;

    public static ControllerOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var o = new ControllerOptions();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Count
                ? args[++i]
                : throw new ForkdException("ControllerOptionValueMissing", ForkdErrorKind.InvalidArgument, $"option {name} needs a value", name);
            int Count() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ForkdException("ControllerOptionInvalid", ForkdErrorKind.InvalidArgument, $"option {name} needs a positive integer", name);
            o = name switch
            {
                "--listen" or "--bind" => o with { Listen = ParseEndpoint(Value()) },
                "--token-file" => o with { TokenFile = Value() },
                "--tls-cert" or "--certificate" => o with { CertificatePath = Value() },
                "--tls-key" or "--key" => o with { KeyPath = Value() },
                "--audit-log" => o with { AuditLogPath = Value() },
                "--max-body-bytes" => o with { MaxRequestBodyBytes = Count() },
                "--max-concurrent-forks" => o with { MaxConcurrentForks = Count() },
                "--max-concurrent-agent-calls" => o with { MaxConcurrentAgentCalls = Count() },
                "--max-concurrent-requests" => o with { MaxConcurrentRequests = Count() },
                "--drain-seconds" => o with { DrainTimeout = TimeSpan.FromSeconds(Count()) },
                "--no-mcp" => o with { Mcp = false },
                "--token" => throw new ForkdException("TokenOnCommandLine", ForkdErrorKind.InvalidArgument,
                    "the token is never taken on the command line (every local user can read it in /proc/<pid>/cmdline)", name)
                { Hint = "Write it to a file only you can read (chmod 600) and pass --token-file PATH." },
                _ => throw new ForkdException("ControllerOptionUnknown", ForkdErrorKind.InvalidArgument, $"unknown option '{name}'", name),
            };
        }

        return o;
    }

    public static IPEndPoint ParseEndpoint(string value)
    {
        if (value.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            value = "127.0.0.1" + value["localhost".Length..];
        }

        if (!IPEndPoint.TryParse(value, out var endpoint) || endpoint.Port == 0 && !value.EndsWith(":0", StringComparison.Ordinal))
        {
            throw new ForkdException("ListenAddressInvalid", ForkdErrorKind.InvalidArgument,
                $"cannot listen on '{value}': expected IP:PORT (e.g. 127.0.0.1:8889 or [::1]:8889)", value);
        }

        return endpoint;
    }
}
