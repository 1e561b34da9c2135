using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>
/// Model-based test: random sequences of write, snapshot create, revert, rollback, delete, merge (pull of the current
/// state), rebase, clone and compact over one disk, checked after every step against an in-memory model of every
/// snapshot's content and of the current state. FsCheck shrinks a failing sequence to a short one.
/// </summary>
public class SnapshotModelTests
{
    private const long Size = 4L << 20;

    private enum Op { Write, Write2, Create, Revert, Delete, Rollback, Pull, Rebase, Clone, Compact }

    [Fact]
    public void Random_operation_sequences_match_the_model()
    {
        var ops = Gen.Choose(0, 99_999).ArrayOf().Where(a => a.Length >= 3).Select(a => a.Take(14).ToArray());
        var formats = Gen.Elements(".vdi", ".vhdx");
        var scenario = Gen.Zip(formats, ops);
        Prop.ForAll(Arb.From(scenario), s => Run(s.Item1, s.Item2))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(40).WithQuietOnSuccess(true));
    }

    private static void Run(string ext, int[] script)
    {
        using var dir = new TempDirectory("model");
        string disk = dir.File("vm" + ext);
        var rng = new Random(script.Aggregate(17, (h, x) => h * 31 + x));
        var cur = new byte[Size];
        var snaps = new Dictionary<string, byte[]>();
        OpsKit.CreateBase(disk, Size, 1 << 20);
        int made = 0;
        var log = new List<string>();
        foreach (int code in script)
        {
            var op = (Op)(code % 10);
            int arg = code / 10;
            string? Pick() => snaps.Count == 0 ? null : snaps.Keys.Order().ElementAt(arg % snaps.Count);
            log.Add($"{op}({arg})");
            string step = string.Join(" ", log);
            switch (op)
            {
                case Op.Write:
                case Op.Write2:
                    OpsKit.RandomWrites(disk, rng, 1 + arg % 3, cur);
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
                    string clone = dir.File($"clone{arg}{(arg % 3 == 0 ? ".vhdx" : arg % 3 == 1 ? ".vdi" : ".img")}");
                    FullClone.RunAsync(src, clone).GetAwaiter().GetResult();
                    OpsKit.AssertContent(expected, clone, $"{step}: the clone");
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
    }
}
