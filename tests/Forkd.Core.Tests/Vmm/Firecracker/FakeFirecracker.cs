using System.Collections.Concurrent;
using System.Globalization;

namespace Forkd.Core.Tests.Firecracker;

/// <summary>
/// A stand-in <c>firecracker</c> executable: a shell script that records its working directory and
/// arguments, then becomes <c>sleep</c> (so the backend launches, detaches and kills a real process).
/// A watcher sees each launch and starts a <see cref="FakeFirecrackerServer"/> on the
/// <c>--api-sock</c> path it was given.
/// </summary>
public sealed class FakeFirecracker : IAsyncDisposable
{
    private readonly string _launchDir;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _watcher;
    private readonly HashSet<string> _seen = [];

    public FakeFirecracker(string directory, FirecrackerApiDescription? api = null)
    {
        Directory.CreateDirectory(directory);
        _launchDir = Path.Combine(directory, "launches");
        Directory.CreateDirectory(_launchDir);
        Binary = Path.Combine(directory, "firecracker");
        // argv[0] keeps the real arguments, as a real firecracker's command line would (the child registry checks it).
        File.WriteAllText(Binary, $"#!/bin/bash\nprintf '%s\\n' \"$$\" \"$PWD\" \"$@\" > '{_launchDir}/'$$.tmp && mv '{_launchDir}/'$$.tmp '{_launchDir}/'$$.launch\nexec -a \"firecracker $*\" sleep 300\n");
        File.SetUnixFileMode(Binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Api = api ?? FirecrackerApiDescription.Published;
        _watcher = Task.Run(WatchAsync);
    }

    public string Binary { get; }

    /// <summary>The registry only signals VMM executables: the stand-in's process runs <c>sleep</c>.</summary>
    public static bool IsItsExecutable(string executable) =>
        Forkd.Core.Store.ChildRegistry.IsKnownVmmExecutable(executable) || Path.GetFileName(executable) == "sleep";

    public FirecrackerApiDescription Api { get; }

    /// <summary>Each launch: pid, working directory, argv, and the server answering it.</summary>
    public ConcurrentQueue<Launch> Launches { get; } = new();

    /// <summary>Applied to each server as it starts (fault injection, guest ports).</summary>
    public Action<FakeFirecrackerServer>? Configure { get; set; }

    public sealed record Launch(int Pid, string WorkingDirectory, IReadOnlyList<string> Arguments, FakeFirecrackerServer Server);

    public IEnumerable<string> AllViolations => Launches.SelectMany(l => l.Server.Violations);

    private async Task WatchAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            foreach (var file in Directory.GetFiles(_launchDir, "*.launch"))
            {
                if (!_seen.Add(file))
                {
                    continue;
                }

                var lines = File.ReadAllLines(file);
                var args = lines.Skip(2).ToList();
                var sock = args.IndexOf("--api-sock") is var i and >= 0 && i + 1 < args.Count ? args[i + 1] : null;
                if (sock is null)
                {
                    continue; // the backend must always pass --api-sock; a test sees no server and fails
                }

                var server = new FakeFirecrackerServer(sock, lines[1], Api);
                Configure?.Invoke(server);
                Launches.Enqueue(new Launch(int.Parse(lines[0], CultureInfo.InvariantCulture), lines[1], args, server));
            }

            try
            {
                await Task.Delay(10, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _watcher.ContinueWith(_ => { }, TaskScheduler.Default);
        foreach (var launch in Launches)
        {
            await launch.Server.DisposeAsync();
            try
            {
                System.Diagnostics.Process.GetProcessById(launch.Pid).Kill();
            }
            catch (ArgumentException)
            {
                // already gone
            }
            catch (InvalidOperationException)
            {
            }
        }

        _stop.Dispose();
    }
}
