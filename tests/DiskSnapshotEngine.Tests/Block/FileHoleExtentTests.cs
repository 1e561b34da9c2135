using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Block;

public class FileHoleExtentTests
{
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public void Holes_inside_allocated_blocks_are_reported_as_zero_and_the_content_is_unchanged(string ext)
    {
        using var dir = new TempDirectory();
        var path = dir.File("disk" + ext);
        var data = RandomData.Bytes(1 << 20, 5);
        // A 32 MiB block with 1 MiB written: the rest of the block is a hole in the file.
        int block = ext == ".vhdx" ? 32 << 20 : 1 << 20;
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(256L << 20, ImageType.Dynamic, block)))
        using (var chain = new DiskChain(new[] { layer }))
        {
            chain.Write(40L << 20, data);
            chain.Flush();
        }

        using var reopened = DiskImage.Open(path);
        var plain = reopened.GetExtents(0, reopened.VirtualSize).ToList();
        var refined = reopened.GetExtents(0, reopened.VirtualSize, skipFileHoles: true).ToList();
        Assert.Equal(reopened.VirtualSize, refined.Sum(e => e.Length));
        long plainData = plain.Where(e => e.Kind == ExtentKind.Data).Sum(e => e.Length);
        long refinedData = refined.Where(e => e.Kind == ExtentKind.Data).Sum(e => e.Length);
        Assert.Equal(block, plainData);
        Assert.InRange(refinedData, data.Length, data.Length + (64 << 10));

        // Every range the refinement calls zero reads as zeros, every data range reads what was written.
        var buffer = new byte[1 << 20];
        foreach (var e in refined)
        {
            for (long at = e.Offset; at < e.End; at += buffer.Length)
            {
                int n = (int)Math.Min(buffer.Length, e.End - at);
                reopened.Read(at, buffer.AsSpan(0, n));
                if (e.Kind != ExtentKind.Data) Assert.True(buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) < 0, $"zero extent at {at} holds data");
                else Assert.True(buffer.AsSpan(0, n).SequenceEqual(data.AsSpan((int)(at - (40L << 20)), n)), $"data extent at {at} differs");
            }
        }
    }
}
