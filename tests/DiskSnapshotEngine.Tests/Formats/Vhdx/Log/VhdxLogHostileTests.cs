using System.Buffers.Binary;
using System.Diagnostics;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Formats.Vhdx.Log;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

public class VhdxLogHostileTests
{
    private static readonly Guid LogGuid = new("a1a2a3a4-b1b2-c1c2-d1d2-e1e2e3e4e5e6");

    /// <summary>A file with two committed entries: seq 1 (one data write) at log offset 0, seq 2 (data + zero) after it.</summary>
    private static CrashSimulationFile TwoEntries(out uint secondEntry)
    {
        var f = new CrashSimulationFile("hostile.vhdx", new byte[LogTestFile.FileLength]);
        var w = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, 1);
        w.Commit([new VhdxLogWrite(LogTestFile.TargetBase, LogTestFile.Sector(1), 4096)], f.Length, f.Length);
        secondEntry = w.HeadOffset;
        w.Commit([new VhdxLogWrite(LogTestFile.TargetBase + 4096, LogTestFile.Sector(2), 4096),
                  new VhdxLogWrite(LogTestFile.TargetBase + 8192, null, 8192)], f.Length, f.Length);
        f.Flush();
        return f;
    }

    /// <summary>Changes bytes of the entry at <paramref name="entryOffset"/> and, when asked, recomputes its checksum
    /// so that the reader's deeper checks (not just the CRC) are what rejects it.</summary>
    private static void Mutate(CrashSimulationFile f, uint entryOffset, Action<byte[]> change, bool fixChecksum)
    {
        long at = LogTestFile.LogOffset + entryOffset;
        // Eight sectors cover the test entries and any length a mutation gives them (sectors past an entry are zero).
        var entry = LogTestFile.Read(f, at, (int)Math.Min(8 * 4096, LogTestFile.LogLength - entryOffset));
        change(entry);
        if (fixChecksum)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(4), 0);
            uint len = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(entry.AsSpan(8)), (uint)entry.Length);
            uint crc = VhdxLogLayout.CrcFinish(VhdxLogLayout.CrcUpdate(VhdxLogLayout.CrcSeed, entry.AsSpan(0, (int)(len / 4096 * 4096))));
            BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(4), crc);
        }
        f.Write(entry, at);
        f.Flush();
    }

    private static VhdxLogSequence? Find(CrashSimulationFile f) =>
        VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid);

    [Fact]
    public void Intact_log_replays_the_second_entry()
    {
        var seq = Find(TwoEntries(out _));
        Assert.Equal(2UL, seq!.LastSequenceNumber);
        Assert.Equal(2, seq.Writes.Count);
    }

    public static TheoryData<string, bool> Corruptions() => new()
    {
        { "checksum", false },
        { "data byte", false },
        { "descriptor count overflows the entry", true },
        { "descriptor count huge", true },
        { "entry length not a multiple of 4 KiB", true },
        { "entry length beyond the log", true },
        { "entry length with slack sectors", true },
        { "descriptor FileOffset misaligned", true },
        { "zero length misaligned", true },
        { "descriptor sequence number", true },
        { "data sector SequenceLow", true },
        { "data sector SequenceHigh", true },
        { "data sector signature", true },
        { "descriptor signature", true },
        { "tail not aligned", true },
        { "tail past the log", true },
        { "tail at an empty sector", true },
        { "LogGuid", true },
        { "FileOffset past any file", true },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void A_damaged_newest_entry_is_invalid_and_the_previous_one_becomes_active(string what, bool fixChecksum)
    {
        var f = TwoEntries(out uint second);
        Mutate(f, second, e =>
        {
            int desc0 = 64, data0 = 4096; // first descriptor is a data descriptor; its data sector follows the header sector
            switch (what)
            {
                case "checksum": e[4] ^= 1; break;
                case "data byte": e[data0 + 100] ^= 0x40; break;
                case "descriptor count overflows the entry": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(24), 200); break;
                case "descriptor count huge": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(24), uint.MaxValue); break;
                case "entry length not a multiple of 4 KiB": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(8), 8192 + 512); break;
                case "entry length with slack sectors": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(8), 4 * 4096); break;
                case "entry length beyond the log": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(8), LogTestFile.LogLength + 4096); break;
                case "descriptor FileOffset misaligned": e[desc0 + 16] |= 1; break;
                case "zero length misaligned": e[desc0 + 32 + 8] = 0x10; break;
                case "descriptor sequence number": e[desc0 + 24] ^= 1; break;
                case "data sector SequenceLow": e[data0 + 4092] ^= 1; break;
                case "data sector SequenceHigh": e[data0 + 4] ^= 1; break;
                case "data sector signature": e[data0] ^= 1; break;
                case "descriptor signature": e[desc0] ^= 1; break;
                case "tail not aligned": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(12), 100); break;
                case "tail past the log": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(12), LogTestFile.LogLength); break;
                case "tail at an empty sector": BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(12), 64 * 4096); break;
                case "LogGuid": e[40] ^= 1; break;
                case "FileOffset past any file": BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(desc0 + 16), 1UL << 62); break;
                default: throw new ArgumentException(what);
            }
        }, fixChecksum);

        var seq = Find(f);
        Assert.NotNull(seq);
        Assert.Equal(1UL, seq.LastSequenceNumber);
        Assert.Equal(LogTestFile.TargetBase, seq.Writes.Single().FileOffset);
    }

    [Fact]
    public void A_sequence_whose_tail_entry_is_gone_is_not_valid()
    {
        var f = TwoEntries(out uint second);
        // Entry 2 now claims it still needs entry 1; damaging entry 1 leaves no valid sequence headed by entry 2,
        // and entry 1 itself is invalid, so there is nothing to replay.
        Mutate(f, second, e => BinaryPrimitives.WriteUInt32LittleEndian(e.AsSpan(12), 0), fixChecksum: true);
        var both = Find(f)!;
        Assert.Equal(2UL, both.LastSequenceNumber);
        Assert.Equal(3, both.Writes.Count); // entry 1's write, then entry 2's two: oldest first
        Assert.Equal(LogTestFile.TargetBase, both.Writes[0].FileOffset);
        Mutate(f, 0, e => e[4] ^= 1, fixChecksum: false);
        Assert.Null(Find(f));
    }

    [Fact]
    public void FlushedFileOffset_past_the_end_of_the_file_is_CorruptImage()
    {
        var f = TwoEntries(out uint second);
        Mutate(f, second, e => BinaryPrimitives.WriteUInt64LittleEndian(e.AsSpan(48), (ulong)LogTestFile.FileLength + 4096), fixChecksum: true);
        var e = Assert.Throws<DiskImageException>(() => Find(f));
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Equal("Log Entry", e.Structure);
        Assert.Equal(LogTestFile.LogOffset + second, e.FileOffset);
    }

    [Fact]
    public void A_log_region_outside_the_file_or_misaligned_is_CorruptImage()
    {
        var f = TwoEntries(out _);
        var past = Assert.Throws<DiskImageException>(() => VhdxLogReader.FindActiveSequence(f, 4L << 20, 1 << 20, LogGuid));
        Assert.Equal(ErrorKind.CorruptImage, past.Kind);
        var misaligned = Assert.Throws<DiskImageException>(() => VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset + 4096, 1 << 20, LogGuid));
        Assert.Equal(ErrorKind.CorruptImage, misaligned.Kind);
    }

    [Fact]
    public void Random_damage_only_ever_yields_a_result_or_a_DiskImageException()
    {
        var rng = new Random(2026);
        var clock = Stopwatch.StartNew();
        for (int iteration = 0; iteration < 300; iteration++)
        {
            var f = TwoEntries(out uint second);
            uint target = rng.Next(2) == 0 ? 0 : second;
            bool fix = rng.Next(2) == 0;
            int flips = rng.Next(1, 6);
            Mutate(f, target, e =>
            {
                for (int i = 0; i < flips; i++)
                {
                    // Mostly in the header and first descriptors, where the fields are.
                    int at = rng.Next(3) == 0 ? rng.Next(e.Length) : rng.Next(128);
                    e[at] = (byte)rng.Next(256);
                }
            }, fix);
            try
            {
                var seq = Find(f);
                if (seq is not null)
                {
                    Assert.InRange(seq.LastSequenceNumber, 1UL, ulong.MaxValue);
                    Assert.All(seq.Writes, w => Assert.True(w.FileOffset % 4096 == 0 && w.ZeroLength % 4096 == 0 && w.ZeroLength > 0));
                    VhdxLogReader.Apply(seq, new DiskSnapshotEngine.IO.MemoryOverlayFile(f));
                }
            }
            catch (DiskImageException)
            {
            }
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    /// <summary>
    /// A read-only view that fails the test on any write (a scan must never write) and leaves the file open; the
    /// bytes read go through a <see cref="ReadCountingFile"/> (the scan must stay linear in the log size).
    /// </summary>
    private sealed class WriteRefusingFile(DiskSnapshotEngine.IO.IImageFile inner) : DelegatingImageFile(inner)
    {
        public override bool CanWrite => false;
        public override void Write(ReadOnlySpan<byte> buffer, long fileOffset) => throw new InvalidOperationException("the reader must not write");
        public override void SetLength(long length) => throw new InvalidOperationException("the reader must not resize");
        public override void Flush() { }
        public override void Dispose() { }
    }

    [Fact]
    public void A_ring_of_forged_headers_claiming_the_whole_log_is_scanned_in_linear_time()
    {
        // Every sector is a "loge" header with the right LogGuid claiming EntryLength = LogLength; each candidate
        // must die after its first sectors, not after reading the whole ring.
        var f = new CrashSimulationFile("forged.vhdx", new byte[LogTestFile.FileLength]);
        var sector = new byte[4096];
        for (uint off = 0; off < LogTestFile.LogLength; off += 4096)
        {
            Array.Clear(sector);
            // Odd sectors: no descriptors at all (the rest of the claimed length would be unchecked slack);
            // even sectors: 126 data descriptors whose first data sector is the next header.
            uint count = off / 4096 % 2 == 0 ? 126u : 0u;
            new LogEntryHeader(0, LogTestFile.LogLength, off, 5, count, LogGuid, 0, 0).WriteTo(sector);
            for (int k = 0; k < count; k++)
                new DataDescriptor(0, 0, (ulong)LogTestFile.TargetBase, 5).WriteTo(sector.AsSpan(64 + 32 * k, 32));
            f.Write(sector, LogTestFile.LogOffset + off);
        }
        f.Flush();
        var counting = new ReadCountingFile(new WriteRefusingFile(f));
        Assert.Null(VhdxLogReader.FindActiveSequence(counting, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid));
        Assert.True(counting.BytesRead <= 3L * LogTestFile.LogLength, $"read {counting.BytesRead} bytes for a {LogTestFile.LogLength}-byte log");
    }
}
