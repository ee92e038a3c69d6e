using System.Text.RegularExpressions;
using Forkd.Core.Tests.Big;

namespace Forkd.Core.Tests;

/// <summary>
/// README-zh.md mirrors README.md section by section. Headings are matched by position: the Chinese
/// text may translate a heading, but its level, its code spans and the cmdlet names in it must be the
/// same, and the fenced code blocks must be the same blocks in the same order. When README.md changes
/// structure, this fails until README-zh.md follows.
/// </summary>
public sealed partial class ReadmeTranslationTests
{
    private static readonly string English = Path.Combine(RepoPaths.Root, "README.md");
    private static readonly string Chinese = Path.Combine(RepoPaths.Root, "README-zh.md");

    internal sealed record Heading(int Level, string Text)
    {
        /// <summary>What must survive translation: code spans and cmdlet names, in order.</summary>
        public string Invariant => string.Join(" ", CodeSpan().Matches(Text).Select(m => m.Value)
            .Concat(CmdletName().Matches(CodeSpan().Replace(Text, "")).Select(m => m.Value)));

        public override string ToString() => $"{new string('#', Level)} {Text}";
    }

    [Fact]
    public void The_Chinese_README_has_the_same_sections_in_the_same_order()
    {
        var english = Headings(File.ReadAllLines(English));
        var chinese = Headings(File.ReadAllLines(Chinese));
        var table = string.Join("\n", Enumerable.Range(0, Math.Max(english.Count, chinese.Count)).Select(i =>
            $"  {i + 1,2}. {(i < english.Count ? english[i] : "(none)"),-70} | {(i < chinese.Count ? chinese[i] : "(none)")}"));

        Assert.True(english.Count == chinese.Count,
            $"README.md has {english.Count} ##/### headings, README-zh.md {chinese.Count}; update README-zh.md:\n{table}");
        for (var i = 0; i < english.Count; i++)
        {
            Assert.True(english[i].Level == chinese[i].Level && english[i].Invariant == chinese[i].Invariant,
                $"heading {i + 1} differs in level, code spans or cmdlet names ('{english[i]}' vs '{chinese[i]}'):\n{table}");
        }
    }

    [Fact]
    public void The_Chinese_README_keeps_every_code_block_as_it_is()
    {
        var english = CodeBlocks(File.ReadAllLines(English));
        var chinese = CodeBlocks(File.ReadAllLines(Chinese));

        Assert.Equal(english.Count, chinese.Count);
        for (var i = 0; i < english.Count; i++)
        {
            Assert.True(english[i] == chinese[i], $"code block {i + 1} differs:\n--- README.md\n{english[i]}\n--- README-zh.md\n{chinese[i]}");
        }
    }

    [Fact]
    public void The_two_READMEs_link_to_each_other_near_the_top()
    {
        Assert.Contains("](README-zh.md)", string.Join("\n", File.ReadLines(English).Take(10)), StringComparison.Ordinal);
        Assert.Contains("](README.md)", string.Join("\n", File.ReadLines(Chinese).Take(10)), StringComparison.Ordinal);
    }

    [Fact]
    public void Headings_inside_code_blocks_do_not_count_and_invariants_ignore_translated_words()
    {
        var headings = Headings(["## `Get-ForkdSnapshot` lists", "```", "## not a heading", "```", "### Packs (Invoke-ForkdFork)", "#### too deep"]);

        Assert.Equal([new Heading(2, "`Get-ForkdSnapshot` lists"), new Heading(3, "Packs (Invoke-ForkdFork)")], headings);
        Assert.Equal("`Get-ForkdSnapshot`", headings[0].Invariant);
        Assert.Equal(new Heading(3, "打包（Invoke-ForkdFork）").Invariant, headings[1].Invariant);
    }

    internal static List<Heading> Headings(IEnumerable<string> lines)
    {
        var result = new List<Heading>();
        var inFence = false;
        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                inFence = !inFence;
                continue;
            }

            if (!inFence && HeadingLine().Match(line) is { Success: true } m)
            {
                result.Add(new Heading(m.Groups[1].Length, m.Groups[2].Value.Trim()));
            }
        }

        return result;
    }

    private static List<string> CodeBlocks(IEnumerable<string> lines)
    {
        var blocks = new List<string>();
        List<string>? current = null;
        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                if (current is null)
                {
                    current = [line.Trim()];
                }
                else
                {
                    blocks.Add(string.Join("\n", current));
                    current = null;
                }

                continue;
            }

            current?.Add(line);
        }

        return blocks;
    }

    [GeneratedRegex(@"^(#{2,3})\s+(\S.*)$")]
    private static partial Regex HeadingLine();

    [GeneratedRegex(@"`[^`]+`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"\b[A-Z][a-z]+-Forkd[A-Za-z]*\b")]
    private static partial Regex CmdletName();
}
