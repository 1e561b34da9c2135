using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Internal snapshots against a model: qemu-io writes (unaligned data, zeroes, compressed clusters), qemu-img
/// snapshot -c and qemu-img resize in random order, on images with 64 KiB clusters, extended L2 entries, version 2,
/// a compressed base and a raw backing file; then every snapshot read through dse (--internal-snapshot) equals the
/// model as it was when the snapshot was taken, at the size it had then, and the current state equals the model.
/// </summary>
public sealed class Qcow2InternalSnapshotModelTests
{
    private enum StepKind { Write, Zero, CompressedWrite, Snapshot, Grow }

    private sealed record Step(StepKind Kind, long Offset, int Length, int Seed)
    {
        public override string ToString() => $"{Kind}({Offset}, +{Length}, {Seed})";
    }

    private sealed record Script(int Variant, Step[] Steps)
    {
        public override string ToString() => $"variant {Variant}: {string.Join(", ", Steps.AsEnumerable())}";
    }

    private const long InitialSize = 3L * MiB + 3 * 512; // a short last cluster too
    private const int GrowBy = MiB + 512;

    // Variant: 0 qemu-img defaults, 1 extended L2 entries (16 KiB clusters), 2 version 2 (4 KiB clusters),
    // 3 a compressed image (16 KiB clusters) made by convert -c, 4 an overlay over a raw backing file.
    private static readonly int[] s_clusterSizes = { 64 * KiB, 16 * KiB, 4 * KiB, 16 * KiB, 64 * KiB };

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Every_snapshot_reads_as_the_model_did_when_it_was_taken()
    {
        var scripts =
            from variant in Gen.Choose(0, s_clusterSizes.Length - 1)
            from count in Gen.Choose(1, 14)
            from steps in Gen.ArrayOf(Steps(), count)
            select new Script(variant, steps);
        var arbitrary = Arb.From(scripts, s => ScriptShrink.DropSteps(s.Steps).Select(shorter => s with { Steps = shorter }));
        Prop.ForAll(arbitrary, Run).Check(Config.QuickThrowOnFailure.WithMaxTest(20));
    }

    // Offsets are drawn in the initial size; a step past the current end is clipped to it when run.
    private static Gen<Step> Steps() =>
        Gen.Frequency(
            (6, from offset in Gen.Choose(0, (int)InitialSize - 1)
                from length in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 200_000)))
                from seed in Gen.Choose(1, 255)
                select new Step(StepKind.Write, offset, length, seed)),
            (1, from offset in Gen.Choose(0, (int)InitialSize - 1)
                from length in Gen.Choose(1, 300_000)
                select new Step(StepKind.Zero, offset, length, 0)),
            (1, from cluster in Gen.Choose(0, 40)
                from seed in Gen.Choose(1, 255)
                select new Step(StepKind.CompressedWrite, cluster, 0, seed)),
            (3, Gen.Constant(new Step(StepKind.Snapshot, 0, 0, 0))),
            (1, Gen.Constant(new Step(StepKind.Grow, 0, 0, 0))));

    private static void Run(Script script)
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = dir.File("disk.qcow2");
        var model = new List<byte>(new byte[InitialSize]);
        int clusterSize = s_clusterSizes[script.Variant];
        Create(dir, image, script.Variant, model);
        // qemu writes compressed only into clusters that have no host cluster yet: the others are skipped.
        var allocated = new HashSet<long>();
        for (long c = 0; c * clusterSize < model.Count; c++)
            if (model.Skip((int)(c * clusterSize)).Take(clusterSize).Any(b => b != 0)) allocated.Add(c);
        var snapshots = new List<(string Name, byte[] Content)>();
        var batch = new List<string>();
        void FlushBatch()
        {
            if (batch.Count > 0) QemuIo(image, batch.ToArray());
            batch.Clear();
        }
        foreach (var step in script.Steps)
        {
            long size = model.Count;
            switch (step.Kind)
            {
                case StepKind.Write or StepKind.Zero:
                {
                    long offset = step.Offset % size;
                    int length = (int)Math.Min(step.Length, size - offset);
                    byte value = (byte)step.Seed;
                    batch.Add(step.Kind == StepKind.Zero ? $"write -z {offset} {length}" : $"write -P {value} {offset} {length}");
                    for (long c = offset / clusterSize; c <= (offset + length - 1) / clusterSize; c++) allocated.Add(c);
                    for (int i = 0; i < length; i++) model[(int)offset + i] = value;
                    break;
                }
                case StepKind.CompressedWrite:
                {
                    long clusters = size / clusterSize;
                    long offset = step.Offset % clusters * clusterSize;
                    if (!allocated.Add(offset / clusterSize)) break;
                    batch.Add($"write -c -P {step.Seed} {offset} {clusterSize}");
                    for (int i = 0; i < clusterSize; i++) model[(int)offset + i] = (byte)step.Seed;
                    break;
                }
                case StepKind.Snapshot:
                    FlushBatch();
                    string name = $"s{snapshots.Count}";
                    QemuImg("snapshot", "-c", name, image);
                    snapshots.Add((name, model.ToArray()));
                    break;
                case StepKind.Grow:
                    // qemu resizes no version 2 image that has snapshots (their size is not recorded there).
                    if (script.Variant == 2 && snapshots.Count > 0) break;
                    FlushBatch();
                    QemuImg("resize", image, (size + GrowBy).ToString());
                    model.AddRange(new byte[GrowBy]);
                    break;
            }
        }
        FlushBatch();
        AssertQemuCheckClean(image);
        using (var current = DiskImage.Open(image)) AssertReads(current, model.ToArray(), "current state");
        // By name, and by id (qemu numbers them from 1), as -s resolves them.
        for (int i = 0; i < snapshots.Count; i++)
        {
            var (name, content) = snapshots[i];
            using var view = DiskImage.Open(image, OpenOptions.ReadOnly with { InternalSnapshot = i % 2 == 0 ? name : (i + 1).ToString() });
            AssertReads(view, content, $"snapshot {name}");
        }
    }

    private static void Create(TempDirectory dir, string image, int variant, List<byte> model)
    {
        string size = InitialSize.ToString();
        switch (variant)
        {
            case 0: QemuImg("create", "-f", "qcow2", image, size); break;
            case 1: QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16k", image, size); break;
            case 2: QemuImg("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", image, size); break;
            case 3:
            {
                string raw = MakeRaw(dir.File("content.raw"), InitialSize, 31);
                File.ReadAllBytes(raw).CopyTo(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(model));
                QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=16k", raw, image);
                File.Delete(raw);
                break;
            }
            default:
            {
                string raw = MakeRaw(dir.File("base.raw"), InitialSize, 47);
                File.ReadAllBytes(raw).CopyTo(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(model));
                QemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", image, size);
                break;
            }
        }
    }

    private static void AssertReads(DiskChain chain, byte[] expected, string label)
    {
        Assert.True(chain.VirtualSize == expected.Length, $"{label}: virtual size {chain.VirtualSize}, model {expected.Length}");
        var read = new byte[expected.Length];
        chain.Read(0, read);
        int same = read.AsSpan().CommonPrefixLength(expected);
        Assert.True(same == expected.Length, $"{label}: first difference with the model at byte {same}");
        foreach (var e in chain.GetExtents(0, chain.VirtualSize).Where(e => e.Kind != ExtentKind.Data))
            Assert.True(expected.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"{label}: extent {e} holds data in the model");
    }
}
