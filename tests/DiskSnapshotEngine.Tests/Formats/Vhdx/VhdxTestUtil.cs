using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

internal static class VhdxTestUtil
{
    /// <summary>Compares the chain with a raw file byte for byte (from <paramref name="from"/>, a multiple of 1 MiB, to the end).</summary>
    public static void AssertSameAsRaw(DiskChain chain, string rawPath, long from = 0)
    {
        using var raw = File.OpenRead(rawPath);
        Assert.Equal(raw.Length, chain.VirtualSize);
        var a = new byte[1 << 20];
        var b = new byte[1 << 20];
        for (long pos = from; pos < chain.VirtualSize; pos += a.Length)
        {
            int n = (int)Math.Min(a.Length, chain.VirtualSize - pos);
            chain.Read(pos, a.AsSpan(0, n));
            raw.Position = pos;
            raw.ReadExactly(b, 0, n);
            if (!a.AsSpan(0, n).SequenceEqual(b.AsSpan(0, n)))
            {
                int i = 0;
                while (a[i] == b[i]) i++;
                Assert.Fail($"content differs from {rawPath} at byte {pos + i}");
            }
        }
    }

    /// <summary>
    /// The cut loop of the VHDX crash tests: <paramref name="session"/> runs on a writable layer over the file's
    /// <paramref name="original"/> bytes, cut at write 0, 1, 2... until it completes. After each cut every power-loss
    /// outcome (the bytes as written, only the durable ones, <paramref name="randomOutcomes"/> random subsets of the
    /// unflushed writes, all of them in reverse order) is written to <paramref name="materialised"/> before each of a
    /// read-only and a read-write open, which <paramref name="check"/> makes (cut, writable). A failure must be the
    /// cut's Io error. <paramref name="uncounted"/> runs before the counting starts (the writes a session flushes);
    /// without it the open is counted too. At the end <paramref name="materialised"/> holds the completed file.
    /// </summary>
    /// <returns>The cut at which the session completed (the writes it made), and the outcomes checked.</returns>
    public static (int Writes, int Outcomes) EveryCut(string target, byte[] original, string materialised,
        Action<VhdxLayer>? uncounted, Action<VhdxLayer> session, int randomOutcomes, Action<int, bool> check)
    {
        int outcomes = 0;
        for (int k = 0; ; k++)
        {
            Assert.True(k < 500, "the change never completed");
            var sim = new CrashSimulationFile(target, original);
            if (uncounted is null) sim.FailAtWrite = k;
            var layer = (VhdxLayer)new VhdxDriver().Open(sim, writable: true);
            if (uncounted is not null)
            {
                uncounted(layer);
                sim.ResetCounters();
                sim.FailAtWrite = k;
            }
            bool done = false;
            try
            {
                session(layer);
                done = !sim.Crashed;
            }
            catch (DiskImageException e) when (sim.Crashed)
            {
                Assert.Equal(ErrorKind.Io, e.Kind);
                try { layer.Dispose(); } catch (DiskImageException) { }
            }
            var states = new List<byte[]> { sim.CurrentContent(), sim.AfterPowerLoss(Array.Empty<int>()) };
            var rng = new Random(k);
            for (int i = 0; i < randomOutcomes; i++) states.Add(sim.AfterRandomPowerLoss(rng));
            states.Add(sim.AfterPowerLoss(Enumerable.Range(0, sim.PendingWrites).Reverse().ToList()));
            foreach (var bytes in states)
            {
                foreach (bool writable in new[] { false, true })
                {
                    File.WriteAllBytes(materialised, bytes);
                    check(k, writable);
                }
                outcomes++;
            }
            if (done)
            {
                File.WriteAllBytes(materialised, sim.CurrentContent());
                return (k, outcomes);
            }
        }
    }
}
