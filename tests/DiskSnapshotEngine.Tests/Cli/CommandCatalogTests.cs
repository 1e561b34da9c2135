using DiskSnapshotEngine.Cli;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>The catalog builds only the verb that runs, found by the name it lists: the names must be the commands' own.</summary>
public class CommandCatalogTests
{
    [Fact]
    public void Each_listed_name_is_its_commands_name_and_builds_only_that_verb()
    {
        foreach (var (name, build) in CommandCatalog.Verbs)
        {
            Assert.Equal(name, build().Name);
            var root = CommandCatalog.BuildRoot(name);
            Assert.Equal(new[] { name }, root.Subcommands.Select(c => c.Name));
        }
        Assert.Equal(CommandCatalog.Verbs.Length, CommandCatalog.BuildRoot("--help").Subcommands.Count);
        Assert.Equal(CommandCatalog.Verbs.Length, CommandCatalog.BuildRoot().Subcommands.Count);
    }
}
