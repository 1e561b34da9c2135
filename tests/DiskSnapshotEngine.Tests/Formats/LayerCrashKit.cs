using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats;

/// <summary>
/// The fault-injection kit the per-format crash tests share. A scenario is a small image (a child over an optional
/// parent, all in <see cref="CrashSimulationFile"/>s) with its content before and after an update that touches every
/// path of a layer's write code. The update is then cut at every write, hit by disk-full at every write and by a power
/// loss at every flush barrier; each file a power loss could leave must read unit by unit as the old or the new content,
/// check must find nothing worse than a leak, and a later allocation must not land on a unit still in use.
/// </summary>
/// <param name="Driver">The format under test.</param>
/// <param name="Extension">File extension of the simulated files (for messages only).</param>
/// <param name="Unit">The block (cluster) size of the images; small units keep the many reopenings fast.</param>
/// <param name="Units">How many units the virtual disk has.</param>
/// <param name="Prepare">The writes that make the old content of the child.</param>
/// <param name="Update">The update under test.</param>
internal sealed record LayerCrashKit(IImageFormatDriver Driver, string Extension, int Unit, int Units,
    Action<DiskChain, int> Prepare, Action<DiskChain, int> Update)
{
    /// <summary>The parent's bytes (null for a single image), the child's before the update, and the content per unit.</summary>
    public sealed record Scenario(byte[]? ParentBytes, byte[] ChildBytes, byte[][] Old, byte[][] New);

    /// <summary>True when the update ends with a flush (counted, cut and hit like its writes); else the close flushes.</summary>
    public bool UpdateFlushes { get; init; }

    /// <summary>The units a later allocation rewrites after the crash (seeded 99, 98, ...); those after the last must not change.</summary>
    public int[] RewrittenAfterCrash { get; init; } = [0];

    /// <summary>A further check of each file a crash leaves (say, that it still ends with its footer).</summary>
    public Action<byte[], string>? AssertFile { get; init; }

    private long Size => Units * (long)Unit;

    private string ChildPath => "/sim/child" + Extension;

    private string ParentPath => "/sim/parent" + Extension;

    /// <summary>Opens the child over the scenario's parent (if any).</summary>
    public DiskChain OpenChain(Scenario s, IImageFile child, bool writable)
    {
        var layers = new List<IDiskLayer> { Driver.Open(child, writable) };
        if (s.ParentBytes is not null) layers.Add(Driver.Open(new CrashSimulationFile(ParentPath, s.ParentBytes) { CanWrite = false }, false));
        return new DiskChain(layers);
    }

    /// <summary>Opens the child made of <paramref name="childBytes"/> over the scenario's parent (if any).</summary>
    public DiskChain OpenChain(Scenario s, byte[] childBytes, bool writable, out CrashSimulationFile childFile) =>
        OpenChain(s, childFile = new CrashSimulationFile(ChildPath, childBytes), writable);

    /// <summary>The update, with its flush when <see cref="UpdateFlushes"/>.</summary>
    private void Operate(DiskChain chain)
    {
        Update(chain, Unit);
        if (UpdateFlushes) chain.Flush();
    }

    /// <summary>Makes the scenario: a parent full of random data when differencing, the child prepared, the update's effect.</summary>
    public Scenario Build(bool differencing)
    {
        byte[]? parentBytes = null;
        ParentDescriptor? parentDesc = null;
        if (differencing)
        {
            var pf = new CrashSimulationFile(ParentPath);
            using (var p = Driver.Create(pf, new ImageCreateOptions(Size, BlockSize: Unit), null))
            {
                using var pc = new DiskChain(new[] { p });
                pc.Write(0, RandomData.Bytes((int)Size, 1));
                parentDesc = ParentDescriptor.Of(p);
            }
            parentBytes = pf.CurrentContent();
        }
        var cf = new CrashSimulationFile(ChildPath);
        var options = new ImageCreateOptions(Size, differencing ? ImageType.Differencing : ImageType.Dynamic, Unit);
        var s = new Scenario(parentBytes, Array.Empty<byte>(), Array.Empty<byte[]>(), Array.Empty<byte[]>());
        var layers = new List<IDiskLayer> { Driver.Create(cf, options, parentDesc) };
        if (parentBytes is not null) layers.Add(Driver.Open(new CrashSimulationFile(ParentPath, parentBytes) { CanWrite = false }, false));
        using (var chain = new DiskChain(layers)) Prepare(chain, Unit);
        s = s with { ChildBytes = cf.CurrentContent() };
        var old = ReadUnits(s, s.ChildBytes);
        using var updated = OpenChain(s, s.ChildBytes, true, out var f);
        Update(updated, Unit);
        updated.Flush();
        return s with { Old = old, New = ReadUnits(s, f.CurrentContent()) };
    }

    /// <summary>Reads every unit of the chain whose child is <paramref name="childBytes"/>.</summary>
    public byte[][] ReadUnits(Scenario s, byte[] childBytes)
    {
        using var chain = OpenChain(s, childBytes, false, out _);
        var units = new byte[Units][];
        for (int i = 0; i < Units; i++)
        {
            units[i] = new byte[Unit];
            chain.Read((long)i * Unit, units[i]);
        }
        return units;
    }

    /// <summary>
    /// Asserts that the file a crash left reads as the old or the new content unit by unit, that check finds only leaks
    /// (or problems <paramref name="alsoAllowed"/> accepts), and that allocating after the crash changes no other unit.
    /// </summary>
    public void AssertOldOrNew(Scenario s, byte[] childBytes, string when, Func<CheckProblem, bool>? alsoAllowed = null)
    {
        AssertFile?.Invoke(childBytes, when);
        var units = ReadUnits(s, childBytes);
        for (int i = 0; i < Units; i++)
            Assert.True(units[i].AsSpan().SequenceEqual(s.Old[i]) || units[i].AsSpan().SequenceEqual(s.New[i]),
                $"{when}: unit {i} is neither the old nor the new content (first differences {units[i].AsSpan().CommonPrefixLength(s.Old[i])} / {units[i].AsSpan().CommonPrefixLength(s.New[i])})");
        using (var chain = OpenChain(s, childBytes, false, out _))
        {
            var report = chain.Check();
            Assert.True(report.Problems.All(p => p.Severity == CheckSeverity.Leak || (alsoAllowed?.Invoke(p) ?? false)),
                $"{when}: {string.Join("; ", report.Problems)}");
        }

        // Writing on after the crash: new units must not land on ones the map still uses.
        using var w = OpenChain(s, childBytes, true, out var wf);
        for (int k = 0; k < RewrittenAfterCrash.Length; k++) w.Write((long)RewrittenAfterCrash[k] * Unit, RandomData.Bytes(Unit, 99 - k));
        w.Flush();
        var again = ReadUnits(s, wf.CurrentContent());
        Assert.Equal(RandomData.Bytes(Unit, 99), again[RewrittenAfterCrash[0]]);
        for (int i = RewrittenAfterCrash.Max() + 1; i < Units; i++)
            Assert.True(again[i].AsSpan().SequenceEqual(units[i]), $"{when}: unit {i} changed after a later allocation");
    }

    /// <summary>How many writes the update makes.</summary>
    public int CountWrites(Scenario s)
    {
        using var chain = OpenChain(s, s.ChildBytes, true, out var f);
        f.ResetCounters();
        Operate(chain);
        return f.WriteCount;
    }

    /// <summary>
    /// Cuts the update after every write (at least <paramref name="minWrites"/>) and asserts the file with every, none
    /// and <paramref name="randomLosses"/> random subsets of the pending writes kept.
    /// </summary>
    public void CutAfterEveryWrite(Scenario s, int minWrites, int randomLosses)
    {
        int writes = CountWrites(s);
        Assert.True(writes >= minWrites, $"only {writes} writes");
        var rng = new Random(1234);
        for (int cut = 0; cut <= writes; cut++)
        {
            var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.FailAtWrite = cut;
            bool crashed = false;
            try { Operate(chain); }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Io) { crashed = true; }
            try { chain.Dispose(); } catch (DiskImageException) { }
            Assert.Equal(cut < writes, crashed);
            AssertOldOrNew(s, f.CurrentContent(), $"cut at write {cut}, every pending write kept");
            AssertOldOrNew(s, f.AfterPowerLoss(Array.Empty<int>()), $"cut at write {cut}, no pending write kept");
            for (int k = 0; k < randomLosses; k++)
                AssertOldOrNew(s, f.AfterRandomPowerLoss(rng), $"cut at write {cut}, random power loss {k}");
        }
    }

    /// <summary>
    /// Power loss just before each flush barrier (at least <paramref name="minBarriers"/>) completes: every subset of the
    /// writes issued since the previous barrier, in issue order, when there are at most <paramref name="allSubsetsUpTo"/>,
    /// else <paramref name="sampledSubsets"/> seeded ones. This catches a missing barrier, which a cut at a write cannot.
    /// </summary>
    public void PowerLossAtEveryBarrier(Scenario s, int minBarriers, int allSubsetsUpTo, int sampledSubsets)
    {
        var states = new List<(string When, byte[] Bytes)>();
        var sim = new CrashSimulationFile(ChildPath, s.ChildBytes);
        int barrier = 0;
        sim.BeforeFlush = () =>
        {
            foreach (var (kept, bytes) in sim.PowerLossStates(allSubsetsUpTo, sampledSubsets)) states.Add(($"barrier {barrier}, {kept}", bytes));
            barrier++;
        };
        using (var chain = OpenChain(s, sim, true)) Update(chain, Unit);
        sim.BeforeFlush = null;
        Assert.True(barrier >= minBarriers, $"only {barrier} flushes");
        foreach (var (when, bytes) in states) AssertOldOrNew(s, bytes, when);
    }

    /// <summary>Disk full at each write of the update: a DiskFull error, and the image old or new.</summary>
    public void DiskFullAtAnyWrite(Scenario s)
    {
        int writes = CountWrites(s);
        for (int at = 0; at < writes; at++)
        {
            var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.DiskFullAtWrite = at;
            var e = Assert.Throws<DiskImageException>(() => Operate(chain));
            Assert.Equal(ErrorKind.DiskFull, e.Kind);
            if (UpdateFlushes)
            {
                try { chain.Dispose(); } catch (DiskImageException) { }
                AssertOldOrNew(s, f.CurrentContent(), $"disk full at write {at}");
            }
            else
            {
                chain.Flush(); // the layer goes on after a refused write: the next flush succeeds
                AssertOldOrNew(s, f.CurrentContent(), $"disk full at write {at}");
                chain.Dispose();
            }
        }
    }
}
