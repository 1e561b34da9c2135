using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

public class VhdxLogCrashTests
{
    private static readonly Guid LogGuid = new("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    private static byte[] Filled(byte value) => Enumerable.Repeat(value, 4096).ToArray();

    /// <summary>
    /// A file whose target sectors hold "old" content, committed through the log (so an older entry is in the
    /// log), and a writer positioned after <paramref name="fillerCommits"/> more commits elsewhere.
    /// </summary>
    private static (byte[] Bytes, ulong NextSeq, uint Head) Prepare(int fillerCommits, int lastFillerSectors = 0)
    {
        var f = new CrashSimulationFile("prep.vhdx", new byte[LogTestFile.FileLength]);
        var w = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, 1);
        w.Commit(Targets.Select(t => new VhdxLogWrite(t, Filled(0x0A), 4096)).ToList(), f.Length, f.Length);
        for (int i = 0; i < fillerCommits; i++)
            w.Commit(Enumerable.Range(0, 20).Select(j => new VhdxLogWrite(LogTestFile.TargetBase + (100 + j) * 4096L, LogTestFile.Sector(i * 100 + j), 4096)).ToList(), f.Length, f.Length);
        if (lastFillerSectors > 0)
            w.Commit(Enumerable.Range(0, lastFillerSectors).Select(j => new VhdxLogWrite(LogTestFile.TargetBase + (200 + j) * 4096L, LogTestFile.Sector(j), 4096)).ToList(), f.Length, f.Length);
        f.Flush();
        return (f.CurrentContent(), w.NextSequenceNumber, w.HeadOffset);
    }

    private static readonly long[] Targets = Enumerable.Range(0, 12).Select(i => LogTestFile.TargetBase + i * 4096L).ToArray();

    /// <summary>The update under test: data sectors and one zero run over sectors that hold non-zero old content.</summary>
    private static List<VhdxLogWrite> Update() =>
    [
        new(Targets[0], LogTestFile.Sector(1000), 4096),
        new(Targets[1], LogTestFile.Sector(1001), 4096),
        new(Targets[2], null, 4 * 4096), // Targets[2..6)
        new(Targets[6], LogTestFile.Sector(1002), 4096),
        new(Targets[11], LogTestFile.Sector(1003), 4096),
    ];

    private static byte[] Expected(bool updated)
    {
        var image = new byte[Targets.Length * 4096];
        for (int i = 0; i < Targets.Length; i++) Filled(0x0A).CopyTo(image, i * 4096);
        if (!updated) return image;
        foreach (var w in Update())
        {
            int at = (int)(w.FileOffset - Targets[0]);
            if (w.Data is not null) w.Data.CopyTo(image, at);
            else Array.Clear(image, at, (int)w.ZeroLength);
        }
        return image;
    }

    /// <summary>Replays what the reader finds on the bytes a power loss left, and returns the target sectors.</summary>
    private static byte[] RecoverTargets(byte[] afterPowerLoss)
    {
        var f = new CrashSimulationFile("recovered.vhdx", afterPowerLoss);
        var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid);
        if (seq is not null) VhdxLogReader.Apply(seq, f);
        return LogTestFile.Read(f, Targets[0], Targets.Length * 4096);
    }

    [Theory]
    [InlineData(0, 0, false)]  // the entry goes right after the first one
    [InlineData(11, 7, true)]  // 13 + 11 x 21 + 8 = 252 sectors used: the 5-sector entry restarts at 0, over the oldest entry
    public void Cut_at_every_write_and_any_power_loss_leaves_all_old_or_all_new(int fillerCommits, int lastFillerSectors, bool restartsAtZero)
    {
        var (bytes, nextSeq, head) = Prepare(fillerCommits, lastFillerSectors);
        Assert.Equal(restartsAtZero, head + 5 * 4096 > LogTestFile.LogLength);
        byte[] oldImage = Expected(false), newImage = Expected(true);
        int totalWrites;
        {
            var probe = new CrashSimulationFile("probe.vhdx", bytes);
            new VhdxLogWriter(probe, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, nextSeq, head)
                .Commit(Update(), probe.Length, probe.Length);
            totalWrites = probe.WriteCount;
            Assert.Equal(newImage, LogTestFile.Read(probe, Targets[0], newImage.Length));
        }
        Assert.True(totalWrites >= 5);

        int sawOld = 0, sawNew = 0;
        for (int k = 0; k <= totalWrites; k++)
        {
            var f = new CrashSimulationFile("crash.vhdx", bytes) { FailAtWrite = k };
            var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, nextSeq, head);
            bool completed = true;
            try { writer.Commit(Update(), f.Length, f.Length); }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Io) { completed = false; }
            Assert.Equal(k == totalWrites, completed);

            int pending = f.PendingWrites;
            var outcomes = new List<IReadOnlyList<int>>
            {
                Array.Empty<int>(),                                    // nothing unflushed survived
                Enumerable.Range(0, pending).ToList(),                 // everything survived, in order
                Enumerable.Range(0, pending).Reverse().ToList(),       // everything, reordered
            };
            for (int i = 0; i < pending; i++) outcomes.Add([i]);      // exactly one unflushed write survived
            var rng = new Random(k * 31 + fillerCommits);
            for (int r = 0; r < 6; r++)
                outcomes.Add(Enumerable.Range(0, pending).Where(_ => rng.Next(2) == 0).OrderBy(_ => rng.Next()).ToList());

            foreach (var order in outcomes)
            {
                // A crash-time file is not readable any more; materialise the durable state it would leave.
                byte[] image = RecoverTargets(f.AfterPowerLoss(order));
                bool isOld = image.AsSpan().SequenceEqual(oldImage), isNew = image.AsSpan().SequenceEqual(newImage);
                Assert.True(isOld || isNew, $"cut at write {k}, kept pending writes [{string.Join(",", order)}]: a mix of old and new content");
                if (isOld) sawOld++; else sawNew++;
                // Once the entry is durable (write 0 was flushed before write 1 was issued) recovery must give the new content.
                if (k >= 1) Assert.True(isNew, $"cut at write {k}: the durable entry was not replayed");
            }
        }
        Assert.True(sawOld > 0 && sawNew > 0);
    }

    [Fact]
    public void After_a_failed_commit_the_writer_refuses_more_commits()
    {
        var (bytes, nextSeq, head) = Prepare(0);
        var f = new CrashSimulationFile("full.vhdx", bytes) { DiskFullAtWrite = 2 };
        var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, nextSeq, head);
        var e = Assert.Throws<DiskImageException>(() => writer.Commit(Update(), f.Length, f.Length));
        Assert.Equal(ErrorKind.DiskFull, e.Kind);
        var again = Assert.Throws<DiskImageException>(() => writer.Commit(Update(), f.Length, f.Length));
        Assert.Equal(ErrorKind.Io, again.Kind);
        // The durable entry still replays to the whole update.
        Assert.Equal(Expected(true), RecoverTargets(f.CurrentContent()));
    }
}
