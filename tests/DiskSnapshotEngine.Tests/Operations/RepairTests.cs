using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse check --repair</c>: fixes what is safe, says what it changed, never changes content.</summary>
public class RepairTests
{
    private const long Size = 8L << 20;

    private static byte[] WithData(string path)
    {
        var model = new byte[Size];
        OpsKit.CreateBase(path, Size, path.EndsWith(".vhdx", StringComparison.Ordinal) ? 1 << 20 : null);
        OpsKit.RandomWrites(path, new Random(111), 8, model);
        return model;
    }

    private static async Task<JsonElement> RepairJson(string path, int expectedExit)
    {
        var r = await CliRunner.RunAsync("check", "--repair", path, "--json");
        Assert.True(r.ExitCode == expectedExit, r.ToString());
        return JsonDocument.Parse(r.StdOut).RootElement.Clone();
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_lagging_vdi_cBlocksAllocated_is_raised_and_the_content_kept()
    {
        using var dir = new TempDirectory("repair-vdi");
        string img = dir.File("disk.vdi");
        var model = WithData(img);
        // VDI 1.1 header: cBlocksAllocated at file offset 388.
        using (var f = File.OpenWrite(img)) { f.Position = 388; f.Write(new byte[4]); }
        Assert.Contains("cBlocksAllocated 0", (await CliRunner.RunAsync("check", img)).StdOut);

        var root = await RepairJson(img, 0);
        Assert.Contains("cBlocksAllocated", root.GetProperty("fixed")[0].GetProperty("message").GetString());
        Assert.Equal(0, root.GetProperty("remaining").GetArrayLength());
        OpsKit.AssertContent(model, img, "the repaired VDI");
        ExternalTool.RunChecked("qemu-img", "check", img);
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_damaged_vhdx_header_copy_and_leaked_blocks_are_fixed_and_the_content_kept()
    {
        using var dir = new TempDirectory("repair-vhdx");
        string img = dir.File("disk.vhdx");
        var model = WithData(img);
        using (var chain = DiskImage.Open(img, OpenOptions.ReadWrite))
        {
            // Data then a zero block over it: the old payload stays in the file, unreferenced (a leak).
            chain.Write(0, Enumerable.Repeat((byte)7, 1 << 20).ToArray());
            chain.WriteZeroes(0, 1 << 20);
            Array.Clear(model, 0, 1 << 20);
            chain.Flush();
        }
        Guid id;
        using (var l = DiskImage.OpenLayer(img, false)) id = l.Identity.Id;
        // Damage one header copy (the other stays valid).
        using (var f = File.OpenWrite(img)) { f.Position = (128 << 10) + 100; f.WriteByte(0x5a); }
        var check = await CliRunner.RunAsync("check", img);
        Assert.Contains("header 2", check.StdOut);
        Assert.Contains("leak", check.StdOut);

        var root = await RepairJson(img, 0);
        var fixedText = string.Join("\n", root.GetProperty("fixed").EnumerateArray().Select(p => p.GetProperty("structure").GetString()));
        Assert.Contains("header 2", fixedText);
        Assert.Contains("payload area", fixedText);
        Assert.Equal(0, root.GetProperty("remaining").GetArrayLength());
        OpsKit.AssertContent(model, img, "the repaired VHDX");
        using (var l = DiskImage.OpenLayer(img, false)) Assert.Equal(id, l.Identity.Id);
        ExternalTool.RunChecked("qemu-img", "check", img);
    }

    [SharedFixtureFact]
    public async Task A_dirty_vhdx_log_is_replayed_into_the_file()
    {
        using var dir = new TempDirectory("repair-log");
        var path = SharedFixtures.Extract("iotest-dirtylog-10G-4M.vhdx.bz2", dir.Path);
        var root = await RepairJson(path, 0);
        Assert.Contains(root.GetProperty("fixed").EnumerateArray(), p => p.GetProperty("message").GetString()!.Contains("LogGuid"));
        using var chain = DiskImage.Open(path);
        Assert.IsNotType<DiskSnapshotEngine.IO.MemoryOverlayFile>(chain.Top.File);
        Assert.Equal("179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f", ContentHash.Of(chain));
    }

    [Fact]
    public async Task An_image_with_errors_is_left_untouched()
    {
        using var dir = new TempDirectory("repair-errors");
        string img = dir.File("disk.vdi");
        WithData(img);
        // Two map entries pointing at the same block: an error (content would read wrong).
        var bytes = File.ReadAllBytes(img);
        long offBlocks = BitConverter.ToUInt32(bytes, 340); // VDI 1.1 header: offBlocks
        int allocated = Enumerable.Range(0, 8).First(i => BitConverter.ToUInt32(bytes, (int)offBlocks + 4 * i) < 0xFFFFFFFE);
        int free = Enumerable.Range(0, 8).First(i => BitConverter.ToUInt32(bytes, (int)offBlocks + 4 * i) >= 0xFFFFFFFE);
        Array.Copy(bytes, offBlocks + 4 * allocated, bytes, offBlocks + 4 * free, 4);
        File.WriteAllBytes(img, bytes);
        var root = await RepairJson(img, 1);
        Assert.True(root.GetProperty("hasErrors").GetBoolean());
        Assert.Equal(0, root.GetProperty("fixed").GetArrayLength());
        Assert.Equal(bytes, File.ReadAllBytes(img));
    }
}
