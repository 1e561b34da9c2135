using System.Security.Cryptography;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// The whole life of qcow2 internal snapshots against a model: dse's writes, qemu-io's writes (some compressed),
/// qemu-img snapshot -c (create), -a (apply: the active state goes back to the snapshot, at its size) and -d (delete)
/// and qemu-img resize in random order. dse does not write an image that has internal snapshots (its writes would need
/// copy-on-write of shared clusters): while one exists, every dse write must be refused with a typed Unsupported error
/// and leave the file byte for byte unchanged, and the step is done by qemu-io instead; once the last one is deleted,
/// dse writes again over clusters whose refcounts and COPIED flags qemu has just lowered, the place where a stale
/// refcount would make dse overwrite a cluster another table still uses. After every dse write and at the end: qemu-img
/// check and dse's check clean, the active state and every snapshot left (--internal-snapshot) equal to the model, and
/// the last one read by the CLI (dse compare --internal-snapshot) equal to its copy in the model.
/// </summary>
public sealed class Qcow2SnapshotLifecycleModelTests(ITestOutputHelper output)
{
    private enum StepKind { DseWrite, QemuWrite, CompressedWrite, Create, Apply, Delete, Grow }

    private sealed record Step(StepKind Kind, long Offset, int Length, int Seed)
    {
        public override string ToString() => Kind switch
        {
            StepKind.Create or StepKind.Grow => Kind.ToString(),
            StepKind.Apply => $"{Kind}(#{Seed})",
            StepKind.Delete => Seed % 3 == 0 ? "DeleteAll" : $"{Kind}(#{Seed})",
            _ => $"{Kind}({Offset}, +{Length}, {Seed})",
        };
    }

    private sealed record Script(int Variant, Step[] Steps)
    {
        public override string ToString() => $"variant {Variant}: {string.Join(", ", Steps.AsEnumerable())}";
    }

    private const long InitialSize = 2L * MiB + 5 * 512; // a short last cluster too
    private const int GrowBy = 512 * KiB + 512;

    // Variant: 0 qemu-img defaults, 1 extended L2 entries (16 KiB clusters), 2 version 2 (4 KiB clusters),
    // 3 an overlay over a raw backing file (64 KiB clusters).
    private static readonly int[] s_clusterSizes = { 64 * KiB, 16 * KiB, 4 * KiB, 64 * KiB };

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Dse_writes_and_qemu_snapshot_create_apply_delete_keep_every_state_equal_to_the_model()
    {
        using var realTools = new RealToolsTally(output);
        var scripts =
            from variant in Gen.Choose(0, s_clusterSizes.Length - 1)
            from count in Gen.Choose(1, 16)
            from steps in Gen.ArrayOf(Steps(), count)
            select new Script(variant, steps);
        var arbitrary = Arb.From(scripts, s => ScriptShrink.DropSteps(s.Steps).Select(shorter => s with { Steps = shorter }));
        var seen = new Dictionary<string, int>();
        Prop.ForAll(arbitrary, s => Run(s, realTools, seen)).Check(Config.QuickThrowOnFailure.WithMaxTest(12));
        // What the scripts did, so a run whose steps never reached the interesting states shows it.
        foreach (var (what, count) in seen.OrderBy(c => c.Key)) output.WriteLine($"{what}: {count}");
    }

    /// <summary>
    /// A fixed script that reaches what random scripts may miss: dse writes refused while snapshots exist, then, after
    /// a delete of them all, dse writes over clusters qemu has just released (before and after a grow), every one checked
    /// against the model.
    /// </summary>
    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Dse_writes_again_after_the_last_snapshot_is_deleted(int variant)
    {
        using var realTools = new RealToolsTally(output);
        Step[] steps =
        [
            new(StepKind.DseWrite, 1000, 150_000, 11),
            new(StepKind.Create, 0, 0, 0),
            new(StepKind.DseWrite, 70_000, 5000, 12),       // refused, written by qemu
            new(StepKind.QemuWrite, 0, 100_000, 7),
            new(StepKind.Create, 0, 0, 0),
            new(StepKind.Apply, 0, 0, 2),                   // back to the first snapshot
            new(StepKind.Delete, 0, 0, 3),                  // all of them, newest first
            new(StepKind.DseWrite, 0, 140_000, 13),         // over clusters the snapshots shared
            new(StepKind.Grow, 0, 0, 0),
            new(StepKind.DseWrite, 60_000, 150_000, 14),
        ];
        var seen = new Dictionary<string, int>();
        Run(new Script(variant, steps), realTools, seen);
        Assert.Equal(1, seen.GetValueOrDefault("dse writes before any snapshot"));
        Assert.Equal(1, seen.GetValueOrDefault("dse writes refused (snapshots present)"));
        Assert.Equal(1, seen.GetValueOrDefault("deletes of the last snapshot"));
        Assert.Equal(2, seen.GetValueOrDefault("dse writes after the last snapshot was deleted"));
    }

    // Offsets are drawn in the initial size; a step past the current end is clipped to it when run. Apply and
    // Delete pick a snapshot by seed among those that exist when they run (none: the step does nothing); a Delete whose
    // seed is a multiple of 3 deletes every one.
    private static Gen<Step> Steps() =>
        Gen.Frequency(
            (6, from offset in Gen.Choose(0, (int)InitialSize - 1)
                from length in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 150_000)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new Step(StepKind.DseWrite, offset, length, seed)),
            (2, from offset in Gen.Choose(0, (int)InitialSize - 1)
                from length in Gen.Choose(1, 100_000)
                from seed in Gen.Choose(1, 255)
                select new Step(StepKind.QemuWrite, offset, length, seed)),
            (1, from cluster in Gen.Choose(0, 40)
                from seed in Gen.Choose(1, 255)
                select new Step(StepKind.CompressedWrite, cluster, 0, seed)),
            (3, Gen.Constant(new Step(StepKind.Create, 0, 0, 0))),
            (2, from seed in Gen.Choose(0, 1000) select new Step(StepKind.Apply, 0, 0, seed)),
            (3, from seed in Gen.Choose(0, 1000) select new Step(StepKind.Delete, 0, 0, seed)),
            (1, Gen.Constant(new Step(StepKind.Grow, 0, 0, 0))));

    private static void Run(Script script, RealToolsTally realTools, Dictionary<string, int> seen)
    {
        void Saw(string what) => seen[what] = seen.GetValueOrDefault(what) + 1;
        using var dir = new TempDirectory("qcow2-isnap-life");
        string image = dir.File("disk.qcow2");
        byte[] model = Create(dir, image, script.Variant);
        int clusterSize = s_clusterSizes[script.Variant];
        var snapshots = new List<(string Name, byte[] Content)>();
        int refused = 0, created = 0;
        foreach (var step in script.Steps)
        {
            long size = model.Length;
            switch (step.Kind)
            {
                case StepKind.DseWrite:
                {
                    long offset = step.Offset % size;
                    int length = (int)Math.Min(step.Length, size - offset);
                    var data = RandomData.Bytes(length, step.Seed);
                    if (step.Seed % 7 == 0) Array.Clear(data); // zeros written as data
                    if (snapshots.Count > 0)
                    {
                        AssertWriteRefused(dir, image, snapshots.Count);
                        refused++;
                        Saw("dse writes refused (snapshots present)");
                        // The state moves on all the same, written by qemu.
                        string raw = dir.File("piece.raw");
                        File.WriteAllBytes(raw, data);
                        QemuIo(image, $"write -s {raw} {offset} {length}");
                        File.Delete(raw);
                    }
                    else
                    {
                        using (var chain = DiskImage.Open(image, OpenOptions.ReadWrite)) chain.Write(offset, data);
                        Saw(created > 0 ? "dse writes after the last snapshot was deleted" : "dse writes before any snapshot");
                        data.CopyTo(model, offset);
                        AssertState(image, model, snapshots, $"{script}: after {step}");
                        break;
                    }
                    data.CopyTo(model, offset);
                    break;
                }
                case StepKind.QemuWrite:
                {
                    long offset = step.Offset % size;
                    int length = (int)Math.Min(step.Length, size - offset);
                    QemuIo(image, $"write -P {step.Seed} {offset} {length}");
                    model.AsSpan((int)offset, length).Fill((byte)step.Seed);
                    break;
                }
                case StepKind.CompressedWrite:
                {
                    // qemu writes compressed only into a cluster with no host cluster yet; it skips the others.
                    long offset = step.Offset % (size / clusterSize) * clusterSize;
                    var map = QemuImg("map", "--output=json", "-f", "qcow2", image);
                    if (!ClusterIsUnallocated(map, offset, clusterSize)) break;
                    QemuIo(image, $"write -c -P {step.Seed} {offset} {clusterSize}");
                    model.AsSpan((int)offset, clusterSize).Fill((byte)step.Seed);
                    Saw("compressed writes");
                    break;
                }
                case StepKind.Create:
                {
                    string name = $"s{created++}";
                    QemuImg("snapshot", "-c", name, image);
                    snapshots.Add((name, model.ToArray()));
                    break;
                }
                case StepKind.Apply when snapshots.Count > 0:
                    model = snapshots[step.Seed % snapshots.Count].Content.ToArray();
                    QemuImg("snapshot", "-a", snapshots[step.Seed % snapshots.Count].Name, image);
                    Saw(model.Length == size ? "applies" : "applies that changed the size");
                    break;
                case StepKind.Delete when snapshots.Count > 0:
                    // One in three deletes them all, newest first, so that dse writes again more often.
                    do
                    {
                        int which = step.Seed % 3 == 0 ? snapshots.Count - 1 : step.Seed % snapshots.Count;
                        QemuImg("snapshot", "-d", snapshots[which].Name, image);
                        snapshots.RemoveAt(which);
                        Saw(snapshots.Count == 0 ? "deletes of the last snapshot" : "deletes");
                    }
                    while (step.Seed % 3 == 0 && snapshots.Count > 0);
                    break;
                case StepKind.Grow:
                    // qemu resizes no version 2 image that has snapshots (their size is not recorded there).
                    if (script.Variant == 2 && snapshots.Count > 0) break;
                    QemuImg("resize", "-f", "qcow2", image, (size + GrowBy).ToString());
                    Array.Resize(ref model, (int)size + GrowBy);
                    break;
            }
        }
        AssertState(image, model, snapshots, $"{script}: at the end ({refused} dse write(s) refused)");
        if (snapshots.Count > 0)
        {
            // The CLI's --internal-snapshot too: dse compare reads the last snapshot as A against the model's copy.
            var (name, content) = snapshots[^1];
            string raw = dir.File("snapshot.raw");
            File.WriteAllBytes(raw, content);
            var compare = CliRunner.RunAsync("compare", image, raw, "--internal-snapshot", name).GetAwaiter().GetResult();
            Assert.True(compare.ExitCode == 0, $"{script}: dse compare --internal-snapshot {name} exited {compare.ExitCode}: {compare.StdOut}{compare.StdErr}");
        }
        Saw($"scripts ending with {Math.Min(snapshots.Count, 3)}{(snapshots.Count >= 3 ? "+" : "")} snapshot(s) read");
        RealTools.AssertReadsModel(image, model, $"{script}", realTools);
    }

    // dse's Unsupported refusal, typed and naming the header field, through the library and the CLI (exit code of
    // Unsupported), and not one byte of the file changed.
    private static void AssertWriteRefused(TempDirectory dir, string image, int snapshotCount)
    {
        byte[] before = SHA256.HashData(File.ReadAllBytes(image));
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(image, OpenOptions.ReadWrite).Dispose());
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Equal("header", e.Structure);
        Assert.Contains($"{snapshotCount} internal snapshot(s)", e.Message);
        string input = dir.File("refused.bin");
        File.WriteAllBytes(input, [1, 2, 3]);
        var cli = CliRunner.RunAsync("write", image, "--offset", "0", "--input", input).GetAwaiter().GetResult();
        Assert.True(cli.ExitCode == ExitCodes.ForKind(ErrorKind.Unsupported), $"dse write exited {cli.ExitCode}: {cli.StdErr}");
        Assert.Contains("internal snapshot(s)", cli.StdErr);
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(image)));
    }

    // qemu-img check and dse's check clean; the active state and every snapshot (by name, and by id every other one)
    // read through dse equal to the model.
    private static void AssertState(string image, byte[] model, List<(string Name, byte[] Content)> snapshots, string when)
    {
        AssertQemuCheckClean(image);
        using (var current = DiskImage.Open(image))
        {
            AssertClean(current.Check());
            ChainModel.AssertSame(current, model, $"{when}: active state");
        }
        var ids = SnapshotIds(image);
        for (int i = 0; i < snapshots.Count; i++)
        {
            var (name, content) = snapshots[i];
            string key = i % 2 == 0 ? name : ids[name];
            using var view = DiskImage.Open(image, OpenOptions.ReadOnly with { InternalSnapshot = key });
            ChainModel.AssertSame(view, content, $"{when}: snapshot {name} (opened as '{key}')");
        }
    }

    // qemu numbers snapshots with ids that are not reused after a delete: ask qemu-img which id each name has.
    private static Dictionary<string, string> SnapshotIds(string image)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(QemuImg("info", "--output=json", "-f", "qcow2", image));
        return doc.RootElement.TryGetProperty("snapshots", out var list)
            ? list.EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e.GetProperty("id").GetString()!)
            : [];
    }

    // qemu refuses a compressed write into a cluster that has a host cluster (data, or zeros kept allocated), so
    // the model only asks for one where this image (not its backing file) has none.
    private static bool ClusterIsUnallocated(string mapJson, long offset, int clusterSize)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(mapJson);
        return !doc.RootElement.EnumerateArray().Any(e =>
        {
            long start = e.GetProperty("start").GetInt64(), end = start + e.GetProperty("length").GetInt64();
            return end > offset && start < offset + clusterSize && e.GetProperty("depth").GetInt32() == 0
                && (e.GetProperty("data").GetBoolean() || e.TryGetProperty("offset", out _));
        });
    }

    private static byte[] Create(TempDirectory dir, string image, int variant)
    {
        string size = InitialSize.ToString();
        var model = new byte[InitialSize];
        switch (variant)
        {
            case 0: QemuImg("create", "-f", "qcow2", image, size); break;
            case 1: QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16k", image, size); break;
            case 2: QemuImg("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", image, size); break;
            default:
            {
                string raw = MakeRaw(dir.File("base.raw"), InitialSize, 47);
                File.ReadAllBytes(raw).CopyTo(model, 0);
                QemuImg("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", image, size);
                break;
            }
        }
        return model;
    }
}
