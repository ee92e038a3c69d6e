using Forkd.Core.Guest;
using Xunit;

namespace Forkd.Core.Tests.Guest;

/// <summary>The recipes shipped in recipes/ load, and a derived recipe holds its base's packages.</summary>
public sealed class GuestRecipeTests
{
    private static string Recipes => AgentProcess.Sources.RecipesDirectory;

    [Fact]
    public void The_shipped_recipes_include_minimal_and_python_numpy() =>
        Assert.Superset(new HashSet<string> { "minimal", "python-numpy" }, GuestRecipe.ListNames(Recipes).ToHashSet());

    [Fact]
    public void Python_numpy_inherits_minimal_and_adds_numpy()
    {
        var minimal = GuestRecipe.Load(Recipes, "minimal");
        var numpy = GuestRecipe.Load(Recipes, "python-numpy");

        Assert.Contains("python3.11-minimal", minimal.Packages);
        Assert.DoesNotContain("python3-numpy", minimal.Packages);
        Assert.Superset(minimal.Packages.ToHashSet(), numpy.Packages.ToHashSet());
        Assert.Contains("python3-numpy", numpy.Packages);
        Assert.True(numpy.ExpectNumpy);
        Assert.Equal("python3.11", numpy.Symlinks["usr/bin/python3"]);
    }

    [Theory]
    [InlineData("no-such-recipe", "RecipeNotFound")]
    [InlineData("../minimal", "InvalidRecipeName")]
    [InlineData(".hidden", "InvalidRecipeName")]
    public void Bad_recipe_names_are_refused(string name, string errorId)
    {
        var ex = Assert.Throws<ForkdException>(() => GuestRecipe.Load(Recipes, name));

        Assert.Equal(errorId, ex.ErrorId);
    }
}
