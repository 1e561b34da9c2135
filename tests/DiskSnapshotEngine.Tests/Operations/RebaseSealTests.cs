using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>A rebased image reads through its new parent as a linked clone does, so the new parent is sealed like one.</summary>
public class RebaseSealTests
{
    [Fact]
    public async Task The_new_parent_is_sealed_and_a_write_to_it_is_refused_wherever_the_child_lives()
    {
        using var dir = new TempDirectory("rebase-seal");
        Directory.CreateDirectory(dir.File("vms"));
        string a = dir.File("a.vhdx"), b = dir.File("b.vhdx"), child = dir.File("vms/c.qcow2"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", a, "--size", "16M");
        await CliRunner.OkAsync("create", b, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", a);
        File.WriteAllBytes(input, RandomData.Bytes(4096, 2));

        var rebase = await CliRunner.OkAsync("rebase", child, "--parent", b);
        Assert.Equal("", rebase.StdErr);
        var seal = (await CliRunner.InfoAsync(b)).GetProperty("seal").EnumerateArray().Select(e => e.GetString());
        Assert.Equal(["golden"], seal);
        // The child is in another folder, so only the seal stops a write that would change what it reads.
        string hash = ContentHash.OfFile(b);
        var write = await CliRunner.RunAsync("write", b, "--offset", "0", "--input", input);
        Assert.True(write.ExitCode == ExitCodes.ForKind(ErrorKind.ReadOnly) && write.StdErr.Contains("sealed"), write.ToString());
        Assert.Equal(hash, ContentHash.OfFile(b));
    }
}
