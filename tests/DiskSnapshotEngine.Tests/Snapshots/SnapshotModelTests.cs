using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>
/// Model-based test: random sequences of write, snapshot create, revert, rollback, delete, merge (pull of the current
/// state), rebase, clone (to VHDX, VDI, raw, qcow2 and VHD, dynamic or fixed) and compact over one disk of VDI, VHDX,
/// qcow2 or VHD, checked after every step against an in-memory model of every snapshot's content and of the current
/// state; each clone, and at the end the disk and every snapshot, also by the real tools (<see cref="RealTools"/>).
/// Each step carries its own seed, so a step writes the same data whatever comes before it, and FsCheck shrinks a
/// failing sequence by dropping steps.
/// </summary>
public class SnapshotModelTests(ITestOutputHelper output)
{
    private const long Size = 4L << 20;

    public enum Op { Write, Write2, Create, Revert, Delete, Rollback, Pull, Rebase, Clone, Compact }

    /// <param name="Arg">Which snapshot a step picks, how many writes it makes, the clone's format...</param>
    /// <param name="Seed">The seed of this step's random writes.</param>
    public sealed record Step(Op Kind, int Arg, int Seed)
    {
        public override string ToString() => Kind is Op.Write or Op.Write2 ? $"{Kind}({Arg}, seed {Seed})" : $"{Kind}({Arg})";
    }

    private static readonly Gen<Step> s_step =
        from code in Gen.Choose(0, 99_999)
        from seed in Gen.Choose(0, int.MaxValue - 1)
        select new Step((Op)(code % 10), code / 10, seed);

    [RequiresToolFact("qemu-img")]
    public void Random_operation_sequences_match_the_model() => Check(".vdi", ".vhdx");

    [RequiresToolFact("qemu-img")]
    public void Random_operation_sequences_over_qcow2_and_vhd_match_the_model() => Check(".qcow2", ".vhd");

    private void Check(params string[] extensions)
    {
        using var realTools = new RealToolsTally(output);
        var steps = s_step.ArrayOf().Where(a => a.Length >= 3).Select(a => a.Take(14).ToArray());
        var formats = Gen.Elements(extensions);
        var scenario = Gen.Zip(formats, steps);
        var arbitrary = Arb.From(scenario, s => ScriptShrink.DropSteps(s.Item2).Select(shorter => (s.Item1, shorter)));
        Prop.ForAll(arbitrary, s => Run(s.Item1, s.Item2, realTools))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true));
    }

    private static readonly string[] s_cloneFormats = [".vhdx", ".vdi", ".img", ".qcow2", ".vhd"];

    private static void Run(string ext, Step[] script, RealToolsTally realTools)
    {
        using var dir = new TempDirectory("model");
        string disk = dir.File("vm" + ext);
        var cur = new byte[Size];
        var snaps = new Dictionary<string, byte[]>();
        OpsKit.CreateBase(disk, Size, 1 << 20);
        int made = 0;
        var log = new List<string>();
        foreach (var st in script)
        {
            var (op, arg, seed) = st;
            string? Pick() => snaps.Count == 0 ? null : snaps.Keys.Order().ElementAt(arg % snaps.Count);
            log.Add(st.ToString());
            string step = string.Join(" ", log);
            switch (op)
            {
                case Op.Write:
                case Op.Write2:
                    OpsKit.RandomWrites(disk, new Random(seed), 1 + arg % 3, cur);
                    break;
                case Op.Create:
                    string name = $"s{made++}";
                    DiskSnapshots.Create(disk, name);
                    snaps[name] = (byte[])cur.Clone();
                    break;
                case Op.Revert:
                    if (Pick() is not { } r) continue;
                    DiskSnapshots.Revert(disk, r);
                    cur = (byte[])snaps[r].Clone();
                    break;
                case Op.Rollback:
                    if (snaps.Count == 0) continue;
                    try
                    {
                        var e = DiskSnapshots.Rollback(disk);
                        cur = (byte[])snaps[e.Name].Clone();
                    }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.InvalidArgument) { }
                    break;
                case Op.Delete:
                    if (Pick() is not { } d) continue;
                    try
                    {
                        DiskSnapshots.DeleteAsync(disk, d).GetAwaiter().GetResult();
                        snaps.Remove(d);
                    }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.ReadOnly && e.Message.Contains("branches")) { }
                    break;
                case Op.Pull:
                    try { Merge.PullAsync(disk).GetAwaiter().GetResult(); }
                    catch (DiskImageException e) when (e.Kind is ErrorKind.Unsupported or ErrorKind.InvalidArgument) { }
                    break;
                case Op.Rebase:
                    if (Pick() is not { } target) continue;
                    try { Rebase.RunAsync(disk, DiskSnapshots.PathOf(disk, DiskSnapshots.Catalog(disk).Find(target, disk))).GetAwaiter().GetResult(); }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.InvalidArgument) { }
                    break;
                case Op.Clone:
                    string src = Pick() is { } cs && arg % 2 == 0 ? DiskSnapshots.PathOf(disk, DiskSnapshots.Catalog(disk).Find(cs, disk)) : disk;
                    var expected = src == disk ? cur : snaps[DiskSnapshots.Catalog(disk).Snapshots.First(s => DiskSnapshots.PathOf(disk, s) == src).Name];
                    string cloneExt = s_cloneFormats[arg % s_cloneFormats.Length];
                    string clone = dir.File($"clone{arg}{cloneExt}");
                    // Every other VHD or VHDX clone is fixed (all blocks allocated; VHD's data then its footer).
                    bool fixedClone = cloneExt is ".vhd" or ".vhdx" && arg / s_cloneFormats.Length % 2 == 1;
                    FullClone.RunAsync(src, clone, new CloneOptions(Type: fixedClone ? ImageType.Fixed : ImageType.Dynamic)).GetAwaiter().GetResult();
                    OpsKit.AssertContent(expected, clone, $"{step}: the clone");
                    RealTools.AssertReadsModel(clone, expected, $"{step}: the clone", realTools);
                    File.Delete(clone);
                    break;
                case Op.Compact:
                    string what = Pick() is { } cn && arg % 2 == 0 ? DiskSnapshots.PathOf(disk, DiskSnapshots.Catalog(disk).Find(cn, disk)) : disk;
                    Compact.RunAsync(what).GetAwaiter().GetResult();
                    break;
            }
            OpsKit.AssertContent(cur, disk, $"{ext} {step}: the current state");
            var listed = DiskSnapshots.List(disk);
            Assert.Equal(snaps.Keys.Order(), listed.Select(s => s.Entry.Name).Order());
            foreach (var s in listed) OpsKit.AssertContent(snaps[s.Entry.Name], s.Path, $"{ext} {step}: snapshot {s.Entry.Name}");
        }
        string done = $"{ext} {string.Join(" ", log)}";
        RealTools.AssertReadsModel(disk, cur, $"{done}: the current state", realTools);
        foreach (var s in DiskSnapshots.List(disk)) RealTools.AssertReadsModel(s.Path, snaps[s.Entry.Name], $"{done}: snapshot {s.Entry.Name}", realTools);
    }
}
