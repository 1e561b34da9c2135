using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// The edges of a VHDX growth past its BAT room: changes still pending on the open layer, refusals and a full disk
/// while the BAT is copied (the file as it was), both region table copies, and regions dse does not know (kept).
/// </summary>
public class VhdxBatGrowthSafetyTests
{
    private const long Small = 6L << 20, Grown = 130L << 30; // 1 MiB blocks: the 1 MiB BAT region holds about 128 GiB

    /// <summary>A 6 MiB image of 1 MiB blocks holding random writes; returns its content.</summary>
    private static byte[] SmallImage(string path, int seed)
    {
        var model = new byte[Small];
        OpsKit.CreateBase(path, Small, 1 << 20);
        OpsKit.RandomWrites(path, new Random(seed), 6, model);
        return model;
    }

    private static byte[] RegionTables(string path)
    {
        using var f = File.OpenRead(path);
        var b = new byte[2 * RegionTableSize];
        f.Position = RegionTable1Offset;
        f.ReadExactly(b, 0, RegionTableSize);
        f.Position = RegionTable2Offset;
        f.ReadExactly(b, RegionTableSize, RegionTableSize);
        return b;
    }

    [Fact]
    public void A_block_written_on_the_open_layer_reaches_the_relocated_BAT_and_both_region_tables_change_alike()
    {
        using var dir = new TempDirectory("batgrow-pending");
        string path = dir.File("disk.vhdx");
        OpsKit.CreateBase(path, Small, 1 << 20);
        var before = RegionTables(path);
        var data = RandomData.Bytes(1 << 20, 7);
        using (var layer = (VhdxLayer)DiskImage.OpenLayer(path, writable: true))
        {
            layer.Write(3L << 20, data); // a new block: its BAT entry is still in the sector cache
            Assert.True(layer.TryResizeInPlace(Grown));
        }
        using (var chain = DiskImage.Open(path))
        {
            Assert.Equal(Grown, chain.VirtualSize);
            var back = new byte[data.Length];
            chain.Read(3L << 20, back);
            Assert.Equal(-1, OpsKit.FirstDifference(data, back));
            Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
        }
        var after = RegionTables(path);
        Assert.True(after.AsSpan(0, RegionTableSize).SequenceEqual(after.AsSpan(RegionTableSize)), "the two region table copies differ");
        Assert.False(after.AsSpan(0, RegionTableSize).SequenceEqual(before.AsSpan(0, RegionTableSize)), "the region table did not change");
        using var reopened = (VhdxLayer)DiskImage.OpenLayer(path, writable: false);
        var bat = new VhdxRegionTableEntry(BatRegion, reopened.BatRegion.FileOffset, reopened.BatRegion.Length, true);
        // Entry layout (2.2.3.2): GUID, FileOffset, Length, Required; the BAT's entry in each copy names the new region.
        for (int copy = 0; copy < 2; copy++)
        {
            var table = after.AsSpan(copy * RegionTableSize, RegionTableSize);
            int count = BinaryPrimitives.ReadInt32LittleEndian(table[8..]);
            bool found = false;
            for (int i = 0; i < count; i++)
            {
                var e = table.Slice(16 + i * 32, 32);
                if (new Guid(e[..16]) != BatRegion) continue;
                found = true;
                Assert.Equal(bat.FileOffset, BinaryPrimitives.ReadInt64LittleEndian(e[16..]));
                Assert.Equal(bat.Length, BinaryPrimitives.ReadUInt32LittleEndian(e[24..]));
            }
            Assert.True(found, $"region table copy {copy + 1} has no BAT entry");
        }
    }

    [Fact]
    public async Task A_refused_growth_leaves_the_file_byte_identical()
    {
        using var dir = new TempDirectory("batgrow-refused");
        string path = dir.File("disk.vhdx");
        OpsKit.CreateBase(path, Small, 1 << 20);
        string hash = ContentHash.OfFile(path);
        using (var layer = (VhdxLayer)DiskImage.OpenLayer(path, writable: true))
        {
            Assert.False(layer.TryResizeInPlace(MaxVirtualSize + (1L << 30)));
            Assert.False(layer.TryResizeInPlace(Grown + 1));
        }
        Assert.Equal(hash, ContentHash.OfFile(path));
        var r = await CliRunner.RunAsync("resize", path, "--size", (Grown + 1).ToString());
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(hash, ContentHash.OfFile(path));
    }

    /// <summary>Fails every write past the given file length with "no space left" (the new BAT region's copy).</summary>
    private sealed class FullPast(IImageFile inner, long limit) : DelegatingImageFile(inner)
    {
        public override void Write(ReadOnlySpan<byte> buffer, long fileOffset)
        {
            if (fileOffset + buffer.Length > limit)
                throw new DiskImageException(ErrorKind.DiskFull, $"simulated disk full at file offset {fileOffset}", Path);
            base.Write(buffer, fileOffset);
        }
    }

    [Fact]
    public async Task A_full_disk_while_the_BAT_is_copied_leaves_the_old_image_whole()
    {
        using var dir = new TempDirectory("batgrow-full");
        string path = dir.File("disk.vhdx");
        var model = SmallImage(path, 5);
        var original = File.ReadAllBytes(path);
        var sim = new CrashSimulationFile(path, original);
        var layer = (VhdxLayer)new VhdxDriver().Open(new FullPast(sim, original.Length), writable: true);
        var e = Assert.Throws<DiskImageException>(() => layer.TryResizeInPlace(Grown));
        Assert.Equal(ErrorKind.DiskFull, e.Kind);
        layer.Dispose();
        foreach (var bytes in new[] { sim.CurrentContent(), sim.AfterPowerLoss(Array.Empty<int>()) })
        {
            // What remains: the headers BeginChange rewrote (FileWriteGuid, sequence number); identity and content kept.
            Assert.Equal(original.Length, bytes.Length);
            Assert.True(bytes.AsSpan((int)HeaderAreaSize).SequenceEqual(original.AsSpan((int)HeaderAreaSize)), "the file changed past the headers");
            File.WriteAllBytes(path, bytes);
            using (var chain = DiskImage.Open(path))
            {
                Assert.Equal(Small, chain.VirtualSize);
                var back = new byte[Small];
                chain.Read(0, back);
                Assert.Equal(-1, OpsKit.FirstDifference(model, back));
                Assert.Empty(chain.Check().Problems);
            }
            var check = await CliRunner.RunAsync("check", path);
            Assert.True(check.ExitCode == 0, check.ToString());
        }
    }

    /// <summary>Adds a non-required region (a new GUID, 1 MiB of data at the end of the file) to both region tables.</summary>
    internal static (long Offset, Guid Id) AddUnknownRegion(string path)
    {
        var id = Guid.NewGuid();
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        long offset = (f.Length + MiB - 1) / MiB * MiB;
        f.SetLength(offset + MiB);
        f.Position = offset;
        f.Write(RandomData.Bytes((int)MiB, 99));
        var table = new byte[RegionTableSize];
        f.Position = RegionTable1Offset;
        f.ReadExactly(table);
        int count = BinaryPrimitives.ReadInt32LittleEndian(table.AsSpan(8));
        var e = table.AsSpan(16 + count * 32, 32);
        id.TryWriteBytes(e);
        BinaryPrimitives.WriteInt64LittleEndian(e[16..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(e[24..], (uint)MiB);
        BinaryPrimitives.WriteUInt32LittleEndian(e[28..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(table.AsSpan(8), count + 1);
        BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(4), Crc32C.ComputeWithZeroField(table, 4));
        foreach (long at in new[] { RegionTable1Offset, RegionTable2Offset })
        {
            f.Position = at;
            f.Write(table);
        }
        return (offset, id);
    }

    [Fact]
    public async Task A_region_dse_does_not_know_is_no_leak_and_compact_refuses_to_drop_it()
    {
        using var dir = new TempDirectory("batgrow-region");
        string path = dir.File("disk.vhdx");
        SmallImage(path, 9);
        var (offset, id) = AddUnknownRegion(path);
        using (var layer = (VhdxLayer)DiskImage.OpenLayer(path, writable: false))
            Assert.Contains(layer.Regions, r => r.Guid == id && r.FileOffset == offset);
        using (var chain = DiskImage.Open(path))
            Assert.Empty(chain.Check().Problems);
        var check = await CliRunner.RunAsync("check", path);
        Assert.True(check.ExitCode == 0, check.ToString());
        string hash = ContentHash.OfFile(path);
        var r = await CliRunner.RunAsync("compact", path);
        Assert.True(r.ExitCode == DiskSnapshotEngine.Cli.ExitCodes.ForKind(ErrorKind.Unsupported), r.ToString());
        Assert.Contains(id.ToString(), r.StdErr, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(hash, ContentHash.OfFile(path));
    }

    /// <summary>
    /// The crash state "log entry written, not yet applied" (durable bytes of the first cut whose image opens at the new
    /// size while the region tables on disk are still the old ones): qemu replays the log (check -r all) and reads the
    /// new size and the old data.
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public void Qemu_replays_a_growth_whose_log_is_written_but_not_applied()
    {
        using var dir = new TempDirectory("batgrow-qemu-log");
        string path = dir.File("disk.vhdx");
        var model = SmallImage(path, 11);
        var original = File.ReadAllBytes(path);
        var tables = RegionTables(path);
        string cut = dir.File("cut.vhdx");
        for (int k = 0; ; k++)
        {
            Assert.True(k < 200, "no cut left the log written but not applied");
            var sim = new CrashSimulationFile(path, original) { FailAtWrite = k };
            var layer = (VhdxLayer)new VhdxDriver().Open(sim, writable: true);
            try { layer.TryResizeInPlace(Grown); layer.Dispose(); }
            catch (DiskImageException) when (sim.Crashed) { }
            File.WriteAllBytes(cut, sim.AfterPowerLoss(Array.Empty<int>()));
            using (var chain = DiskImage.Open(cut))
                if (chain.VirtualSize != Grown || !RegionTables(cut).AsSpan().SequenceEqual(tables)) continue;
            break;
        }
        ExternalTool.RunChecked("qemu-img", "check", "-r", "all", cut);
        Assert.False(RegionTables(cut).AsSpan().SequenceEqual(tables), "qemu did not replay the log");
        using (var doc = System.Text.Json.JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", cut)))
            Assert.Equal(Grown, doc.RootElement.GetProperty("virtual-size").GetInt64());
        File.WriteAllBytes(dir.File("model.raw"), model);
        var cmp = ExternalTool.Run("qemu-img", "compare", "-f", "raw", dir.File("model.raw"), VhdxBatGrowthTests.QemuWindow(cut, 0, Small));
        Assert.True(cmp.ExitCode == 0, cmp.StdOut + cmp.StdErr);
        using var grown = DiskImage.Open(cut);
        Assert.Equal(Grown, grown.VirtualSize);
        Assert.False(grown.Check().HasErrors, string.Join("; ", grown.Check().Problems));
    }
}
