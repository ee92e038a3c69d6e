using System.Diagnostics;
using System.Text.RegularExpressions;
using Forkd.Core.Guest;

namespace Forkd.Core.Tests.Guest;

/// <summary>The real guest agent (guest/forkd-agent.py) running on the host under python3, listening on a free TCP port.</summary>
internal sealed partial class AgentProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _log = [];

    private AgentProcess(Process process)
    {
        _process = process;
    }

    public int Port { get; private set; }

    public int ProcessId => _process.Id;

    public static GuestSources Sources { get; } = GuestSources.Locate();

    public static string RepoRoot => Path.GetDirectoryName(Sources.GuestDirectory)!;

    public IReadOnlyList<string> Log
    {
        get
        {
            lock (_log)
            {
                return [.. _log];
            }
        }
    }

    public static ProcessStartInfo StartInfo(params string[] args)
    {
        var info = new ProcessStartInfo("python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-u");
        info.ArgumentList.Add(Sources.AgentPath);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        // The host's own environment must not configure a warm-up by accident.
        info.Environment.Remove("FORKD_WARMUP_CMD");
        info.Environment.Remove("FORKD_AGENT_LANG");
        return info;
    }

    public static async Task<AgentProcess> StartAsync(IReadOnlyDictionary<string, string>? env = null, string? recipeEnv = null)
    {
        var info = StartInfo("--listen", "tcp:127.0.0.1:0", "--recipe-env", recipeEnv ?? "/nonexistent/forkd-recipe.env");
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = Process.Start(info)!;
        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var agent = new AgentProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                port.TrySetException(new InvalidOperationException("agent exited before listening: " + string.Join('\n', agent.Log)));
                return;
            }

            lock (agent._log)
            {
                agent._log.Add(e.Data);
            }

            var m = ListeningLine().Match(e.Data);
            if (m.Success)
            {
                port.TrySetResult(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (agent._log)
                {
                    agent._log.Add("stderr: " + e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            agent.Port = await port.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch
        {
            await agent.DisposeAsync(); // never leave an agent (and its warm-up) running behind a failed start
            throw;
        }

        return agent;
    }

    public Task<AgentClient> ConnectAsync() =>
        AgentClient.ConnectTcpAsync("127.0.0.1", Port, TimeSpan.FromSeconds(5), CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"agent listening on tcp:127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();
}
