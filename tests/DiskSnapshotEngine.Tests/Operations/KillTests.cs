using System.Diagnostics;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// <c>dse merge</c> in a child process killed with SIGKILL at a random moment: every image still opens and reads
/// what it read before, and running the same command again finishes the merge. A few kills run in the suite;
/// the 20-kill version is a long test (DSE_LONG_TESTS=1). Linux only: the child is killed with a real SIGKILL.
/// </summary>
public class KillTests
{
    private const long Size = 48L << 20;

    [LinuxFact("kills a child process with SIGKILL")]
    public Task Merge_killed_with_sigkill_a_few_times_recovers() => KillLoop(3, seed: 41);

    [LongFact(linuxOnly: true)]
    public Task Merge_killed_with_sigkill_twenty_times_recovers_long() => KillLoop(20, seed: 42);

    private static async Task KillLoop(int kills, int seed)
    {
        string dse = Path.Combine(AppContext.BaseDirectory, "dse.dll");
        Assert.True(File.Exists(dse), $"{dse} is missing");
        var rng = new Random(seed);
        int interrupted = 0, attempts = 0;
        TimeSpan? runTime = null;
        // Every attempt checks the images; only killed runs count, so a merge that beat its kill is simply another
        // (checked) attempt, and the run time is re-measured from it.
        while (interrupted < kills && attempts++ < kills * 5)
        {
            using var dir = new TempDirectory("kill");
            string b = dir.File("base.vdi"), top = dir.File("top.vdi"), leaf = dir.File("leaf.vdi");
            var model = new byte[Size];
            OpsKit.CreateBase(b, Size);
            FillRandom(b, rng, model, 0, Size / 2);
            OpsKit.CreateChild(top, b);
            FillRandom(top, rng, model, Size / 4, Size / 2);
            var topHash = ContentHash.Of(model);
            OpsKit.CreateChild(leaf, top);
            OpsKit.RandomWrites(leaf, rng, 4, model);
            var leafHash = ContentHash.Of(model);

            if (runTime is null)
            {
                // Calibration: how long a whole run takes here, so kills land inside it whatever the machine's speed.
                string probe = Path.Combine(dir.Path, "probe");
                OpsKit.CopyFolder(dir.Path, probe);
                var sw = Stopwatch.StartNew();
                using (var c = StartMerge(dse, Path.Combine(probe, "top.vdi")))
                {
                    var cErr = c.StandardError.ReadToEndAsync();
                    _ = c.StandardOutput.ReadToEndAsync();
                    await c.WaitForExitAsync();
                    runTime = sw.Elapsed;
                    Assert.True(c.ExitCode == 0, $"calibration run exited {c.ExitCode}: {await cErr}");
                }
                Directory.Delete(probe, true);
            }
            var started = Stopwatch.StartNew();
            using (var p = StartMerge(dse, top))
            {
                var drainOut = p.StandardOutput.ReadToEndAsync();
                var drainErr = p.StandardError.ReadToEndAsync();
                await Task.Delay(TimeSpan.FromMilliseconds(runTime.Value.TotalMilliseconds * (0.1 + 0.85 * rng.NextDouble())));
                bool killed = false;
                if (!p.HasExited)
                {
                    killed = true;
                    // SIGKILL: no handler runs, nothing is flushed by the process.
                    p.Kill();
                    interrupted++;
                }
                await p.WaitForExitAsync();
                await Task.WhenAll(drainOut, drainErr);
                if (!killed)
                {
                    Assert.True(p.ExitCode == 0, $"an uninterrupted merge exited {p.ExitCode}: {drainErr.Result}");
                    runTime = started.Elapsed;
                }
            }

            Assert.Equal(leafHash, ContentHash.Of(OpsKit.ReadAll(leaf)));
            if (File.Exists(top)) Assert.Equal(topHash, ContentHash.Of(OpsKit.ReadAll(top)));

            // The same command finishes an interrupted merge (a finished one has nothing left to rerun).
            if (File.Exists(top) || File.Exists(MergeTests.OperationJournal_PathFor(top)))
            {
                var (code, o, e) = ExternalTool.Run("dotnet", dse, "merge", top);
                Assert.True(code == 0, $"rerun exited {code}: {o} {e}");
            }
            Assert.False(File.Exists(top));
            Assert.Equal(leafHash, ContentHash.Of(OpsKit.ReadAll(leaf)));
            Assert.Equal(topHash, ContentHash.Of(OpsKit.ReadAll(b)));
        }
        Assert.True(interrupted == kills, $"only {interrupted} of {attempts - 1} runs were interrupted: the merges kept finishing before their kill");
    }

    // The copy loop is slowed by its failpoint (DSE_TEST_PIECE_DELAY_MS) so that the merge itself, not the process
    // start-up, fills most of the run: a kill at a random moment then lands inside the copy, relink or removal.
    private const int PieceDelayMs = 15;

    private static Process StartMerge(string dse, string image)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dse, "merge", image }) psi.ArgumentList.Add(a);
        psi.Environment["DSE_TEST_PIECE_DELAY_MS"] = PieceDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Process.Start(psi)!;
    }

    private static void FillRandom(string path, Random rng, byte[] model, long offset, long length)
    {
        using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
        var buf = new byte[1 << 20];
        for (long off = offset; off < offset + length; off += buf.Length)
        {
            rng.NextBytes(buf);
            chain.Write(off, buf);
            buf.CopyTo(model, off);
        }
        chain.Flush();
    }
}
