using System.Text;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Package;

/// <summary>
/// The library example in README.md and in the NuGet package's README (src/DiskSnapshotEngine/PACKAGE.md) is the
/// code below, line for line, and it runs: so the example a user copies compiles against the public API and does
/// what it says.
/// </summary>
public sealed class ReadmeExampleTests
{
    private const string Begin = "// README example: begin";
    private const string End = "// README example: end";

    // README example: begin
    static string LinkedCloneExample(string dir)
    {
        string basePath = Path.Combine(dir, "base.vhdx"), clonePath = Path.Combine(dir, "clone.qcow2");
        DiskImage.Create(basePath, new ImageCreateOptions(VirtualSize: 64 << 20)).Dispose(); // dynamic VHDX, 64 MiB
        using (var disk = DiskImage.Open(basePath, OpenOptions.ReadWrite))
            disk.Write(0, "hello from the base"u8);
        LinkedClone.Create(basePath, clonePath); // linked clone: the base is only read from now on
        using var clone = DiskImage.Open(clonePath, OpenOptions.ReadWrite);
        clone.Write(6, "from the clone"u8); // copy-on-write into clone.qcow2
        var text = new byte[20];
        clone.Read(0, text);                // reads through both layers
        return Encoding.ASCII.GetString(text); // "hello from the clone"
    }
    // README example: end

    [Theory]
    [InlineData("README.md")]
    [InlineData("src/DiskSnapshotEngine/PACKAGE.md")]
    public void The_documented_example_is_the_code_this_test_runs(string document)
    {
        string root = RepositoryFixtures.RepositoryRoot ?? throw new InvalidOperationException("the tests do not run inside a checkout");
        var source = File.ReadAllLines(Path.Combine(root, "tests/DiskSnapshotEngine.Tests/Package/ReadmeExampleTests.cs"));
        var code = source.SkipWhile(l => l.Trim() != Begin).Skip(1).TakeWhile(l => l.Trim() != End);
        var text = File.ReadAllLines(Path.Combine(root, document));
        // The block after the marker comment <!-- library example -->.
        var block = text.SkipWhile(l => l.Trim() != "<!-- library example -->").SkipWhile(l => l.Trim() != "```csharp").Skip(1)
            .TakeWhile(l => l.Trim() != "```");
        Assert.Equal(Dedent(code), Dedent(block));
    }

    [Fact]
    public void The_documented_example_runs_and_leaves_the_base_unchanged()
    {
        using var dir = new TempDirectory("readme-example");
        Assert.Equal("hello from the clone", LinkedCloneExample(dir.Path));
        using var clone = DiskImage.Open(dir.File("clone.qcow2"));
        Assert.Equal(2, clone.Layers.Count);
        using var baseDisk = DiskImage.Open(dir.File("base.vhdx"));
        var head = new byte[20];
        baseDisk.Read(0, head);
        Assert.Equal("hello from the base\0", Encoding.ASCII.GetString(head));
    }

    private static string[] Dedent(IEnumerable<string> lines)
    {
        var list = lines.Select(l => l.TrimEnd()).ToArray();
        Assert.NotEmpty(list);
        int indent = list.Where(l => l.Length > 0).Min(l => l.Length - l.TrimStart().Length);
        return list.Select(l => l.Length == 0 ? l : l[indent..]).ToArray();
    }
}
