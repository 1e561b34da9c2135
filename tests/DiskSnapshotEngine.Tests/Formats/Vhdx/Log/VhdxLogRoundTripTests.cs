using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

/// <summary>A plain file with a 1 MiB log region at 1 MiB and target sectors from 2 MiB.</summary>
internal static class LogTestFile
{
    public const long LogOffset = 1 << 20;
    public const uint LogLength = 1 << 20;
    public const long TargetBase = 2 << 20;
    public const long FileLength = 4 << 20;

    public static byte[] Sector(int seed) => RandomData.Bytes(4096, seed);

    public static byte[] Read(IImageFile f, long offset, int length)
    {
        var b = new byte[length];
        f.ReadOrZero(b, offset);
        return b;
    }
}

public class VhdxLogRoundTripTests
{
    private static readonly Guid Guid1 = new("11111111-2222-3333-4444-555555555555");

    [Fact]
    public void Reader_finds_exactly_the_committed_writes_in_a_real_file()
    {
        using var dir = new TempDirectory("vhdxlog");
        string path = dir.File("log.bin");
        var writes = new List<VhdxLogWrite>
        {
            new(LogTestFile.TargetBase, LogTestFile.Sector(1), 4096),
            new(LogTestFile.TargetBase + 3 * 4096, null, 2 * 4096),
            new(LogTestFile.TargetBase + 8192, LogTestFile.Sector(2), 4096),
        };
        using (var f = ImageFile.Create(path))
        {
            f.SetLength(LogTestFile.FileLength);
            f.Write(Enumerable.Repeat((byte)0x77, 5 * 4096).ToArray(), LogTestFile.TargetBase);
            var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 1);
            writer.Commit(writes, f.Length, f.Length);
            Assert.Equal(LogTestFile.Sector(1), LogTestFile.Read(f, LogTestFile.TargetBase, 4096));
            Assert.Equal(LogTestFile.Sector(2), LogTestFile.Read(f, LogTestFile.TargetBase + 8192, 4096));
            Assert.True(LogTestFile.Read(f, LogTestFile.TargetBase + 3 * 4096, 8192).All(b => b == 0));
            Assert.True(LogTestFile.Read(f, LogTestFile.TargetBase + 4096, 4096).All(b => b == 0x77));
        }
        using (var f = ImageFile.Open(path, writable: false))
        {
            var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1);
            Assert.NotNull(seq);
            Assert.Equal(1UL, seq.LastSequenceNumber);
            Assert.Equal(writes.Count, seq.Writes.Count);
            for (int i = 0; i < writes.Count; i++)
            {
                Assert.Equal(writes[i].FileOffset, seq.Writes[i].FileOffset);
                Assert.Equal(writes[i].ZeroLength, seq.Writes[i].ZeroLength);
                Assert.Equal(writes[i].Data, seq.Writes[i].Data);
            }
            Assert.Equal(LogTestFile.FileLength, seq.FlushedFileOffset);
            Assert.Equal(LogTestFile.FileLength, seq.LastFileOffset);
            Assert.Equal(3u * 4096, seq.HeadOffset); // one header/descriptor sector + two data sectors
        }
    }

    [Fact]
    public void Many_commits_wrap_the_ring_and_the_newest_entry_is_active()
    {
        var f = new CrashSimulationFile("ring.vhdx", new byte[LogTestFile.FileLength]);
        var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 7);
        var rng = new Random(42);
        var model = new Dictionary<long, byte[]>();
        List<VhdxLogWrite> last = [];
        for (int commit = 0; commit < 60; commit++)
        {
            int n = rng.Next(1, 40);
            last = Enumerable.Range(0, n).Select(_ =>
            {
                long off = LogTestFile.TargetBase + rng.Next(0, 512) * 4096L;
                return new VhdxLogWrite(off, LogTestFile.Sector(rng.Next()), 4096);
            }).ToList();
            writer.Commit(last, f.Length, f.Length);
            foreach (var w in last) model[w.FileOffset] = w.Data!;
            var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1);
            Assert.NotNull(seq);
            Assert.Equal(7UL + (ulong)commit, seq.LastSequenceNumber);
            Assert.Equal(last.Select(w => w.FileOffset), seq.Writes.Select(w => w.FileOffset));
            Assert.Equal(writer.HeadOffset, seq.HeadOffset);
        }
        // The ring wrapped several times (60 entries of up to 41 sectors in 256), and the file holds the model.
        foreach (var (off, data) in model) Assert.Equal(data, LogTestFile.Read(f, off, 4096));

        // A writer continuing from the replayed head and sequence keeps the log readable.
        var found = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!;
        var next = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, found.LastSequenceNumber + 1, found.HeadOffset);
        next.Commit([new VhdxLogWrite(LogTestFile.TargetBase, LogTestFile.Sector(99), 4096)], f.Length, f.Length);
        var after = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!;
        Assert.Equal(found.LastSequenceNumber + 1, after.LastSequenceNumber);
        Assert.Equal(LogTestFile.Sector(99), after.Writes.Single().Data);
    }

    [Fact]
    public void Entries_of_an_older_log_guid_are_ignored()
    {
        var f = new CrashSimulationFile("guid.vhdx", new byte[LogTestFile.FileLength]);
        var old = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 100);
        old.Commit([new VhdxLogWrite(LogTestFile.TargetBase, LogTestFile.Sector(1), 4096)], f.Length, f.Length);
        old.Commit([new VhdxLogWrite(LogTestFile.TargetBase, LogTestFile.Sector(2), 4096)], f.Length, f.Length);
        var guid2 = Guid.NewGuid();
        var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, guid2, 1, old.HeadOffset);
        writer.Commit([new VhdxLogWrite(LogTestFile.TargetBase + 4096, LogTestFile.Sector(3), 4096)], f.Length, f.Length);

        var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, guid2);
        Assert.NotNull(seq);
        Assert.Equal(1UL, seq.LastSequenceNumber); // not the old log's 101, though it is higher
        Assert.Equal(LogTestFile.TargetBase + 4096, seq.Writes.Single().FileOffset);
        Assert.Equal(101UL, VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!.LastSequenceNumber);
        Assert.Null(VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid.Empty));
    }

    [Fact]
    public void An_update_larger_than_one_entry_is_refused_before_anything_is_written()
    {
        var f = new CrashSimulationFile("big.vhdx", new byte[LogTestFile.FileLength]);
        var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 1);
        List<VhdxLogWrite> Update(int n) =>
            Enumerable.Range(0, n).Select(i => new VhdxLogWrite(LogTestFile.TargetBase + i * 4096L, LogTestFile.Sector(i), 4096)).ToList();
        f.ResetCounters();
        var e = Assert.Throws<DiskImageException>(() => writer.Commit(Update(254), f.Length, f.Length));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Equal(0, f.WriteCount);
        writer.Commit(Update(253), f.Length, f.Length); // 2 descriptor sectors + 253 data sectors = 255 of 256
        var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!;
        Assert.Equal(253, seq.Writes.Count);
        Assert.Equal(Update(253).Select(w => w.Data), seq.Writes.Select(w => w.Data));
    }

    [Fact]
    public void An_entry_that_wraps_from_the_end_of_the_ring_to_its_start_is_read()
    {
        // Writers such as qemu let an entry run past the end of the log and continue at its start. Ours never does,
        // so the entry is made by our writer and moved: its sectors placed from the last log sector onwards,
        // its Tail (itself) and checksum rewritten.
        var scratch = new CrashSimulationFile("scratch.vhdx", new byte[LogTestFile.FileLength]);
        var writes = Enumerable.Range(0, 3).Select(i => new VhdxLogWrite(LogTestFile.TargetBase + i * 4096L, LogTestFile.Sector(50 + i), 4096)).ToList();
        new VhdxLogWriter(scratch, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 9).Commit(writes, scratch.Length, scratch.Length);
        var entry = LogTestFile.Read(scratch, LogTestFile.LogOffset, 4 * 4096);
        uint start = LogTestFile.LogLength - 4096;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(12), start);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(4), 0);
        uint crc = DiskSnapshotEngine.Formats.Vhdx.Log.VhdxLogLayout.CrcFinish(DiskSnapshotEngine.Formats.Vhdx.Log.VhdxLogLayout.CrcUpdate(DiskSnapshotEngine.Formats.Vhdx.Log.VhdxLogLayout.CrcSeed, entry));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(4), crc);

        var f = new CrashSimulationFile("wrapped.vhdx", new byte[LogTestFile.FileLength]);
        for (int i = 0; i < 4; i++)
            f.Write(entry.AsSpan(i * 4096, 4096), LogTestFile.LogOffset + (start + i * 4096L) % LogTestFile.LogLength);

        var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1);
        Assert.NotNull(seq);
        Assert.Equal(9UL, seq.LastSequenceNumber);
        Assert.Equal(3u * 4096, seq.HeadOffset);
        Assert.Equal(writes.Select(w => w.Data), seq.Writes.Select(w => w.Data));
        Assert.Equal(writes.Select(w => w.FileOffset), seq.Writes.Select(w => w.FileOffset));
    }

    [Fact]
    public void Replay_on_a_real_file_restores_LastFileOffset_and_an_overlay_only_in_memory()
    {
        using var dir = new TempDirectory("vhdxlog");
        string path = dir.File("grow.bin");
        long grown = LogTestFile.FileLength + (1 << 20);
        var sector = LogTestFile.Sector(7);
        byte[] entryState;
        {
            // The commit is cut after its entry is durable; the file had been extended to `grown` before the crash
            // took the extension away (LastFileOffset remembers it).
            var crash = new CrashSimulationFile("grow.bin", new byte[LogTestFile.FileLength]) { FailAtWrite = 1 };
            var writer = new VhdxLogWriter(crash, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 1);
            Assert.Throws<DiskImageException>(() => writer.Commit([new VhdxLogWrite(LogTestFile.TargetBase, sector, 4096)], crash.Length, grown));
            entryState = crash.AfterPowerLoss([]);
        }
        File.WriteAllBytes(path, entryState);

        using (var ro = new MemoryOverlayFile(ImageFile.Open(path, writable: false)))
        {
            var seq = VhdxLogReader.FindActiveSequence(ro, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!;
            VhdxLogReader.Apply(seq, (IImageFile)ro); // dispatches to the overlay replay
            Assert.Equal(grown, ro.Length);
            Assert.Equal(sector, LogTestFile.Read(ro, LogTestFile.TargetBase, 4096));
        }
        Assert.Equal(entryState, File.ReadAllBytes(path)); // the read-only replay never touched the file

        using (var rw = ImageFile.Open(path, writable: true))
        {
            var seq = VhdxLogReader.FindActiveSequence(rw, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1)!;
            Assert.Equal(grown, seq.LastFileOffset);
            VhdxLogReader.Apply(seq, rw);
            rw.Flush();
        }
        Assert.Equal(grown, new FileInfo(path).Length);
        using var check = ImageFile.Open(path, writable: false);
        Assert.Equal(sector, LogTestFile.Read(check, LogTestFile.TargetBase, 4096));
    }

    [Fact]
    public void Writer_refuses_malformed_writes()
    {
        var f = new CrashSimulationFile("bad.vhdx", new byte[LogTestFile.FileLength]);
        var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 1);
        void Refused(VhdxLogWrite w, long flushed = LogTestFile.FileLength)
        {
            var e = Assert.Throws<DiskImageException>(() => writer.Commit([w], flushed, Math.Max(flushed, LogTestFile.FileLength)));
            Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        }
        Refused(new VhdxLogWrite(LogTestFile.TargetBase + 512, LogTestFile.Sector(1), 4096));
        Refused(new VhdxLogWrite(LogTestFile.TargetBase, new byte[512], 4096));
        Refused(new VhdxLogWrite(LogTestFile.TargetBase, null, 1000));
        Refused(new VhdxLogWrite(LogTestFile.TargetBase, null, 0));
        Refused(new VhdxLogWrite(-4096, LogTestFile.Sector(1), 4096));
        Refused(new VhdxLogWrite(LogTestFile.TargetBase, LogTestFile.Sector(1), 4096), LogTestFile.FileLength + 4096);
        Assert.Equal(0, f.WriteCount);
        Assert.Throws<DiskImageException>(() => new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid.Empty, 1));
        Assert.Throws<DiskImageException>(() => new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, Guid1, 1, 100));
    }
}
