using System.Buffers.Binary;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// The in-place lifecycle verbs on a hostile VHDX (a BAT entry mapping a payload block into the header area): each
/// refuses with one line naming the file and the structure, exit 4 (check --repair: exit 1, nothing fixed), and the
/// file is left byte for byte as it was.
/// </summary>
public class VhdxLifecycleHostileTests
{
    private const long Bat = 3L << 20; // where dse places the BAT region of a new file

    private static string Hostile(TempDirectory dir, string name)
    {
        string path = dir.File(name);
        OpsKit.CreateBase(path, 4L << 20, 1 << 20);
        OpsKit.RandomWrites(path, new Random(7), 3, new byte[4L << 20]);
        var bytes = File.ReadAllBytes(path);
        // Payload block 1: PAYLOAD_BLOCK_FULLY_PRESENT at file offset 0.
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)Bat + 8), 6);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("set-identity", "--new")]
    [InlineData("resize", "--size=8M")]
    [InlineData("resize", "--size=1M", "--shrink")]
    public async Task A_hostile_bat_entry_is_refused_with_the_file_unchanged(params string[] verbAndArgs)
    {
        using var dir = new TempDirectory("vhdx-life-hostile");
        string img = Hostile(dir, "disk.vhdx");
        var before = File.ReadAllBytes(img);
        var r = await CliRunner.RunAsync([verbAndArgs[0], img, .. verbAndArgs[1..]]);
        Assert.True(r.ExitCode == 4, r.ToString());
        Assert.Contains("BAT entry", r.StdErr);
        Assert.Contains(img, r.StdErr);
        Assert.Single(r.StdErr.Trim().Split('\n'));
        Assert.Equal(before, File.ReadAllBytes(img));
    }

    [Fact]
    public async Task Check_repair_leaves_a_hostile_file_untouched()
    {
        using var dir = new TempDirectory("vhdx-life-hostile-repair");
        string img = Hostile(dir, "disk.vhdx");
        var before = File.ReadAllBytes(img);
        var r = await CliRunner.RunAsync("check", "--repair", img);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("header area", r.StdOut);
        Assert.Equal(before, File.ReadAllBytes(img));
    }

    [Fact]
    public async Task Detach_of_a_child_with_a_hostile_bat_entry_is_refused_unchanged()
    {
        using var dir = new TempDirectory("vhdx-life-hostile-detach");
        string parent = dir.File("parent.vhdx"), child = dir.File("child.vhdx");
        OpsKit.CreateBase(parent, 4L << 20, 1 << 20);
        OpsKit.CreateChild(child, parent);
        OpsKit.RandomWrites(child, new Random(8), 3, new byte[4L << 20]);
        var bytes = File.ReadAllBytes(child);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((int)Bat + 8), 6);
        File.WriteAllBytes(child, bytes);
        var parentBytes = File.ReadAllBytes(parent);
        var r = await CliRunner.RunAsync("detach", child);
        Assert.True(r.ExitCode == 4, r.ToString());
        Assert.Contains("BAT entry", r.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(child));
        Assert.Equal(parentBytes, File.ReadAllBytes(parent));
    }
}
