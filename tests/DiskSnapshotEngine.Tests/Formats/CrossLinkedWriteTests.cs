using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats;

/// <summary>
/// Issue 10 §5.3: two BAT (VHDX) or block-map (VDI) entries pointing at the same file block. Before, `dse write` into one
/// returned 0 and changed the other; every writer must refuse with exit 4 before its first byte (BlockTableGuard).
/// </summary>
public class CrossLinkedWriteTests
{
    private const int MiB = 1 << 20, ExitCorrupt = 4;

    /// <summary>An 8 MiB image with blocks 0 and 1 written, then entry 1 pointed at block 0's file block.</summary>
    private static string CrossLinked(TempDirectory dir, string ext)
    {
        string path = dir.File("x." + ext);
        long entry0, entry1;
        using (var l = DiskImage.Create(path, new ImageCreateOptions(8 * MiB, BlockSize: MiB)))
        {
            l.Write(0, RandomData.Bytes(2 * MiB, 5));
            l.Flush();
            (entry0, entry1) = l switch
            {
                VhdxLayer v => (v.BatRegion.FileOffset, v.BatRegion.FileOffset + 8),
                VdiLayer d => (d.Map.EntryOffset(0), d.Map.EntryOffset(1)),
                _ => throw new InvalidOperationException(ext),
            };
        }
        var bytes = File.ReadAllBytes(path);
        int width = ext == "vhdx" ? 8 : 4;
        bytes.AsSpan((int)entry0, width).CopyTo(bytes.AsSpan((int)entry1, width));
        File.WriteAllBytes(path, bytes);
        using (var l = DiskImage.OpenLayer(path, writable: false))
            Assert.Contains(l.Check().Problems, p => p.Severity == CheckSeverity.Error && IsCrossLink(p.Message));
        return path;
    }

    // VDI's check says "already uses", VHDX's "overlaps the block of BAT entry".
    private static bool IsCrossLink(string message) => message.Contains("already uses") || message.Contains("overlaps the block of BAT entry");

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Write_into_a_cross_linked_image_is_refused_before_writing(string ext)
    {
        using var dir = new TempDirectory("crosslink-write");
        string path = CrossLinked(dir, ext);
        var before = ContentHash.OfFile(path);
        File.WriteAllBytes(dir.File("in.bin"), RandomData.Bytes(4096, 6));
        var r = await CliRunner.RunAsync("write", path, "--offset", "1M", "--input", dir.File("in.bin"));
        Assert.Equal(ExitCorrupt, r.ExitCode);
        Assert.True(IsCrossLink(r.StdErr), r.StdErr);
        Assert.Equal(before, ContentHash.OfFile(path));
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Merge_into_a_cross_linked_image_is_refused_before_writing(string ext)
    {
        using var dir = new TempDirectory("crosslink-merge");
        string path = CrossLinked(dir, ext);
        string child = dir.File("c." + ext);
        using (var c = DiskImage.CreateDifferencing(child, path, sealParentAs: SealReasons.None)) c.Flush();
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite)) { chain.Write(3 * MiB, RandomData.Bytes(MiB, 7)); chain.Flush(); }
        var before = ContentHash.OfFile(path);
        var r = await CliRunner.RunAsync("merge", child);
        Assert.Equal(ExitCorrupt, r.ExitCode);
        Assert.Equal(before, ContentHash.OfFile(path));
        Assert.True(File.Exists(child));
    }
}
