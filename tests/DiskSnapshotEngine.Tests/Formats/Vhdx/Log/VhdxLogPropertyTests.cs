using FsCheck;
using FsCheck.Fluent;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

public class VhdxLogPropertyTests
{
    private static readonly Guid LogGuid = new("77777777-6666-5555-4444-333333333333");

    /// <summary>
    /// Model-based: random updates (data sectors and zero runs, possibly overlapping) committed one after another;
    /// after each, the active sequence is exactly that update and the target area equals a flat byte model.
    /// </summary>
    [Fact]
    public void Random_updates_round_trip_and_match_a_flat_model()
    {
        var write = from sector in Gen.Choose(0, 63)
                    from zeroSectors in Gen.Choose(0, 4)   // 0 = a data sector, otherwise a zero run of that many sectors
                    from seed in Gen.Choose(0, 1_000_000)
                    select (sector, zeroSectors, seed);
        var updates = Gen.ListOf(Gen.NonEmptyListOf(write).Select(l => l.Take(60).ToList())).Select(l => l.Take(12).ToList());

        Prop.ForAll(Arb.From(updates), (List<List<(int Sector, int ZeroSectors, int Seed)>> plan) =>
        {
            var f = new CrashSimulationFile("model.vhdx", new byte[LogTestFile.FileLength]);
            var model = new byte[68 * 4096];
            var writer = new VhdxLogWriter(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid, 1);
            ulong expectedSeq = 0;
            foreach (var update in plan)
            {
                var writes = update.Select(w => w.ZeroSectors == 0
                    ? new VhdxLogWrite(LogTestFile.TargetBase + w.Sector * 4096L, LogTestFile.Sector(w.Seed), 4096)
                    : new VhdxLogWrite(LogTestFile.TargetBase + w.Sector * 4096L, null, w.ZeroSectors * 4096L)).ToList();
                writer.Commit(writes, f.Length, f.Length);
                expectedSeq++;
                foreach (var w in writes)
                {
                    int at = (int)(w.FileOffset - LogTestFile.TargetBase);
                    if (w.Data is not null) w.Data.CopyTo(model, at);
                    else Array.Clear(model, at, (int)w.ZeroLength);
                }
                var seq = VhdxLogReader.FindActiveSequence(f, LogTestFile.LogOffset, LogTestFile.LogLength, LogGuid);
                if (seq is null || seq.LastSequenceNumber != expectedSeq || seq.Writes.Count != writes.Count) return false;
                for (int i = 0; i < writes.Count; i++)
                {
                    var (a, b) = (writes[i], seq.Writes[i]);
                    if (a.FileOffset != b.FileOffset || a.ZeroLength != b.ZeroLength) return false;
                    if ((a.Data is null) != (b.Data is null) || (a.Data is not null && !a.Data.AsSpan().SequenceEqual(b.Data))) return false;
                }
                // Replaying the active sequence again over the applied file changes nothing (replay is idempotent).
                VhdxLogReader.Apply(seq, f);
                if (!LogTestFile.Read(f, LogTestFile.TargetBase, model.Length).AsSpan().SequenceEqual(model)) return false;
            }
            return true;
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(40));
    }
}
