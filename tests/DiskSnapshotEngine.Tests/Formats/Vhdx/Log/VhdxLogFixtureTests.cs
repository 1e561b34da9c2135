using System.Buffers.Binary;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

public class VhdxLogFixtureTests
{
    private static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");

    /// <summary>The current header's LogGuid/LogLength/LogOffset (MS-VHDX 2.2.2), read here independently of the driver.</summary>
    private static (Guid LogGuid, uint LogLength, long LogOffset) ReadHeader(IImageFile file)
    {
        var best = (Seq: 0UL, Guid: Guid.Empty, Len: 0u, Off: 0L);
        var h = new byte[4096];
        foreach (long at in new[] { 64L * 1024, 128L * 1024 })
        {
            file.ReadExactly(h, at, "header");
            if (BinaryPrimitives.ReadUInt32LittleEndian(h) != 0x64616568) continue; // "head"
            ulong seq = BinaryPrimitives.ReadUInt64LittleEndian(h.AsSpan(8));
            if (seq >= best.Seq)
                best = (seq, new Guid(h.AsSpan(48, 16)), BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(68)),
                    (long)BinaryPrimitives.ReadUInt64LittleEndian(h.AsSpan(72)));
        }
        Assert.NotEqual(0UL, best.Seq);
        return (best.Guid, best.Len, best.Off);
    }

    /// <summary>The BAT region's file offset from the region table at 192 KiB (MS-VHDX 2.2.3).</summary>
    private static long BatOffset(IImageFile file)
    {
        var t = new byte[65536];
        file.ReadExactly(t, 192 * 1024, "region table");
        Assert.Equal(0x69676572u, BinaryPrimitives.ReadUInt32LittleEndian(t)); // "regi"
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(t.AsSpan(8));
        for (int i = 0; i < count; i++)
        {
            var e = t.AsSpan(16 + 32 * i, 32);
            if (new Guid(e[..16]) == BatRegion) return (long)BinaryPrimitives.ReadUInt64LittleEndian(e[16..]);
        }
        throw new Xunit.Sdk.XunitException("no BAT region");
    }

    [SharedFixtureFact]
    public void Qemu_dirty_log_has_one_active_entry_that_rewrites_the_first_bat_sector()
    {
        using var dir = new TempDirectory("vhdxlog");
        string path = SharedFixtures.Extract("iotest-dirtylog-10G-4M.vhdx.bz2", dir.Path);
        string before = ContentHash.OfFile(path);
        using (var file = ImageFile.Open(path, writable: false))
        {
            var (logGuid, logLength, logOffset) = ReadHeader(file);
            Assert.NotEqual(Guid.Empty, logGuid);
            long bat = BatOffset(file);

            var seq = VhdxLogReader.FindActiveSequence(file, logOffset, logLength, logGuid);

            Assert.NotNull(seq);
            var batWrites = seq.Writes.Where(w => w.FileOffset == bat).ToList();
            Assert.Single(batWrites);
            var w = batWrites[0];
            Assert.NotNull(w.Data);
            var onDisk = new byte[4096];
            file.ReadExactly(onDisk, bat, "BAT");
            Assert.NotEqual(onDisk, w.Data); // the entry really changes the BAT sector
            // Fixture README: 17 MiB of 0xa5 without replay, 18 MiB after (1 MiB blocks). So BAT entries 0..16 are
            // PAYLOAD_BLOCK_FULLY_PRESENT (state 6, MS-VHDX 2.5.1) on disk, entry 17 only in the log. Entry 0 lives in
            // the bytes a data sector carries in its descriptor's LeadingBytes, so this also checks the reassembly.
            ulong State(byte[] sector, int i) => BinaryPrimitives.ReadUInt64LittleEndian(sector.AsSpan(i * 8)) & 7;
            Assert.All(Enumerable.Range(0, 17), i => Assert.Equal(6UL, State(onDisk, i)));
            Assert.NotEqual(6UL, State(onDisk, 17));
            Assert.All(Enumerable.Range(0, 18), i => Assert.Equal(6UL, State(w.Data, i)));
            Assert.Equal(onDisk.AsSpan(0, 17 * 8).ToArray(), w.Data.AsSpan(0, 17 * 8).ToArray());
            Assert.True(seq.FlushedFileOffset <= file.Length);
            Assert.True(seq.HeadOffset < logLength && seq.HeadOffset % 4096 == 0);

            // A read-only replay lands in memory only.
            using var overlay = new MemoryOverlayFile(ImageFile.Open(path, writable: false));
            VhdxLogReader.Apply(seq, overlay);
            var replayed = new byte[4096];
            overlay.ReadExactly(replayed, bat, "BAT");
            Assert.Equal(w.Data, replayed);

            // A different LogGuid finds nothing.
            Assert.Null(VhdxLogReader.FindActiveSequence(file, logOffset, logLength, Guid.NewGuid()));
        }
        Assert.Equal(before, ContentHash.OfFile(path));
    }
}
