using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Cli.Output;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>The --json options resolve only the types JsonContext generated (what the Native AOT build can write).</summary>
public class JsonOptionsTests
{
    [Fact]
    public void Both_styles_keep_the_generated_context_as_their_only_resolver()
    {
        Assert.Same(JsonContext.Default, Json.Options.TypeInfoResolver);
        Assert.Same(JsonContext.Default, Json.OneLine.TypeInfoResolver);
    }
}
