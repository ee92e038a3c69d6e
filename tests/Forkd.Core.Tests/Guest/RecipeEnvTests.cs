using System.Diagnostics;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>The agent reads /etc/forkd-recipe.env (spec 3.3): quotes stripped once, comments skipped.</summary>
public sealed class RecipeEnvTests
{
    [Fact]
    public async Task The_recipe_env_file_configures_the_language_and_the_warmup()
    {
        var file = Path.Combine(Path.GetTempPath(), "forkd-test-recipe-" + Guid.NewGuid().ToString("N")[..8] + ".env");
        var fake = Path.Combine(AgentProcess.RepoRoot, "tests", "guest", "fake-warmup.py");
        await File.WriteAllTextAsync(file, $"# comment\n\n  FORKD_AGENT_LANG = 'node'\nNOT A PAIR\nFORKD_WARMUP_CMD=\"python3 -u {fake}\"\n");
        try
        {
            await using var agent = await AgentProcess.StartAsync(recipeEnv: file);
            await using var client = await agent.ConnectAsync();
            var clock = Stopwatch.StartNew();
            var ping = await client.PingAsync();
            while (!ping.WarmupReady && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50);
                ping = await client.PingAsync();
            }

            Assert.Equal("node", ping.AgentLang);
            Assert.True(ping.WarmupReady, string.Join('\n', agent.Log));
        }
        finally
        {
            File.Delete(file);
        }
    }
}
