using System.Text;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;
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
        DiskImage.Create(basePath, 64 << 20).Dispose(); // dynamic VHDX, 64 MiB
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

    // README snapshots example: begin
    static async Task<string> SnapshotAndMergeExample(string dir)
    {
        string disk = Path.Combine(dir, "vm.vhdx"), trial = Path.Combine(dir, "trial.vhdx");
        DiskImage.Create(disk, 64 << 20).Dispose();
        DiskSnapshots.Create(disk, "clean");            // the disk's state, kept
        using (var d = DiskImage.Open(disk, OpenOptions.ReadWrite)) d.Write(0, "mistake"u8);
        DiskSnapshots.Revert(disk, "clean");            // the write is gone
        LinkedClone.Create(disk, trial);                // try a change in a linked clone...
        using (var t = DiskImage.Open(trial, OpenOptions.ReadWrite)) t.Write(0, "tested"u8);
        DiskImage.Unseal(disk);                         // no clone but trial reads through vm.vhdx
        await Merge.CommitAsync(trial);                 // ...and keep it: into vm.vhdx; trial.vhdx is removed
        using var merged = DiskImage.Open(disk);
        var text = new byte[7];
        merged.Read(0, text);
        return Encoding.ASCII.GetString(text);          // "tested\0"
    }
    // README snapshots example: end

    [Theory]
    [InlineData("README.md")]
    [InlineData("src/DiskSnapshotEngine/PACKAGE.md")]
    public void The_documented_example_is_the_code_this_test_runs(string document)
    {
        var (code, block) = Example(document, Begin, End, "<!-- library example -->");
        Assert.Equal(Dedent(code), Dedent(block));
    }

    [Theory]
    [InlineData("README.md")]
    [InlineData("src/DiskSnapshotEngine/PACKAGE.md")]
    public void The_documented_snapshots_example_is_the_code_this_test_runs(string document)
    {
        var (code, block) = Example(document, "// README snapshots example: begin", "// README snapshots example: end",
            "<!-- library example: snapshots and merge -->");
        Assert.Equal(Dedent(code), Dedent(block));
    }

    [Fact]
    public async Task The_documented_snapshots_example_runs_keeps_the_snapshot_and_removes_the_merged_clone()
    {
        using var dir = new TempDirectory("readme-snapshots");
        Assert.Equal("tested\0", await SnapshotAndMergeExample(dir.Path));
        Assert.False(File.Exists(dir.File("trial.vhdx")));
        var clean = Assert.Single(DiskSnapshots.List(dir.File("vm.vhdx")));
        Assert.Equal("clean", clean.Entry.Name);
        using var snapshot = DiskImage.Open(clean.Path);
        var head = new byte[7];
        snapshot.Read(0, head);
        Assert.Equal(new byte[7], head);
    }

    // The code between the markers in this file, and the csharp block after the HTML comment in the document.
    private static (IEnumerable<string> Code, IEnumerable<string> Block) Example(string document, string begin, string end, string marker)
    {
        string root = RepositoryFixtures.RepositoryRoot ?? throw new InvalidOperationException("the tests do not run inside a checkout");
        var source = File.ReadAllLines(Path.Combine(root, "tests/DiskSnapshotEngine.Tests/Package/ReadmeExampleTests.cs"));
        var code = source.SkipWhile(l => l.Trim() != begin).Skip(1).TakeWhile(l => l.Trim() != end);
        var text = File.ReadAllLines(Path.Combine(root, document));
        var block = text.SkipWhile(l => l.Trim() != marker).SkipWhile(l => l.Trim() != "```csharp").Skip(1)
            .TakeWhile(l => l.Trim() != "```");
        return (code, block);
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
