using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Forkd.Service.Tests;

/// <summary>The forkd-controller executable itself: the token stays out of argv and environ, start errors are machine-readable, SIGTERM stops it cleanly.</summary>
public class ProcessTests
{
    private static string ControllerDll => Path.Combine(AppContext.BaseDirectory, "forkd-controller.dll");

    [Fact]
    public async Task The_token_is_in_neither_argv_nor_environ_and_sigterm_stops_it_cleanly()
    {
        using var temp = new TempPaths();
        var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        var tokenFile = temp.File("token", token);
        using var process = Start(temp, "serve", "--listen", "127.0.0.1:0", "--token-file", tokenFile);
        var address = await ReadListeningAddressAsync(process);

        var argv = File.ReadAllText($"/proc/{process.Id}/cmdline");
        var environ = File.ReadAllText($"/proc/{process.Id}/environ");
        Assert.Contains(tokenFile, argv, StringComparison.Ordinal);
        Assert.DoesNotContain(token, argv, StringComparison.Ordinal);
        Assert.DoesNotContain(token, environ, StringComparison.Ordinal);

        using var client = new HttpClient { BaseAddress = address };
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/snapshots")).StatusCode);
        client.DefaultRequestHeaders.Authorization = new("Bearer", token);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/snapshots")).StatusCode);

        Assert.Equal(0, Tmds.Linux.LibC.kill(process.Id, Tmds.Linux.LibC.SIGTERM));
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("children keep running", await process.StandardOutput.ReadToEndAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("UnauthenticatedNonLoopbackBind", "serve", "--listen", "0.0.0.0:0")]
    [InlineData("TokenOnCommandLine", "serve", "--token", "0123456789abcdef0123")]
    [InlineData("ListenAddressInvalid", "serve", "--listen", "localhost")]
    [InlineData("ControllerOptionUnknown", "serve", "--bogus")]
    public async Task Start_errors_end_with_a_machine_readable_error_line_and_exit_code_2(string errorId, params string[] args)
    {
        using var temp = new TempPaths();
        using var process = Start(temp, args);
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, process.ExitCode);
        var line = stderr.Split('\n').Single(l => l.StartsWith(Program.ErrorLinePrefix, StringComparison.Ordinal));
        using var json = JsonDocument.Parse(line[Program.ErrorLinePrefix.Length..]);
        Assert.Equal(errorId, json.RootElement.GetProperty("error_id").GetString());
        Assert.Equal("InvalidArgument", json.RootElement.GetProperty("kind").GetString());
    }

    private static Process Start(TempPaths temp, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, StandardOutputEncoding = Encoding.UTF8 };
        start.ArgumentList.Add(ControllerDll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["FORKD_DATA_DIR"] = temp.Paths.DataDirectory;
        return Process.Start(start)!;
    }

    private static async Task<Uri> ReadListeningAddressAsync(Process process)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
        {
            var at = line.IndexOf("listening on ", StringComparison.Ordinal);
            if (at >= 0)
            {
                return new Uri(line[(at + 13)..].Split(' ')[0]);
            }
        }

        throw new InvalidOperationException("forkd-controller exited before listening: " + await process.StandardError.ReadToEndAsync());
    }
}
