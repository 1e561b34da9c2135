using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Model-based property: random unaligned writes, zeroing, new qcow2 children (ours, or qemu's with extended L2
/// entries, version 2, or 1-bit refcounts) and close/reopen over a chain whose base is raw, VHDX, VDI, qcow2 or a
/// qemu-compressed qcow2 always read exactly like a flat in-memory disk; every qcow2 layer checks clean, for us
/// and for qemu-img.
/// </summary>
public sealed class Qcow2ModelTests
{
    private const long Size = 6L * MiB + 3 * 512; // a short last cluster too
    private const int MaxLayers = 6;

    public enum OpKind { Write, Zero, Child, Reopen }

    public sealed record Op(OpKind Kind, long Offset, int Length, int Seed)
    {
        public override string ToString() => $"{Kind}({Offset}, {Length}, seed {Seed})";
    }

    public sealed record Case(int Base, Op[] Ops)
    {
        public override string ToString() => $"base {s_bases[Base]}: {string.Join(", ", Ops.Select(o => o.ToString()))}";
    }

    private static readonly string[] s_bases = { "raw", "vhdx", "vdi", "qcow2", "qcow2-compressed" };

    private static readonly Gen<Op> s_op =
        Gen.Frequency(
            (6, from off in Gen.Choose(0, (int)Size - 1)
                from len in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 300_000)), (1, Gen.Constant(64 * KiB)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new Op(OpKind.Write, off, len, seed)),
            (1, from off in Gen.Choose(0, (int)Size - 1)
                from len in Gen.Choose(1, 2 * MiB)
                select new Op(OpKind.Zero, off, len, 0)),
            (2, from kind in Gen.Choose(0, 3) select new Op(OpKind.Child, 0, 0, kind)),
            (1, Gen.Constant(new Op(OpKind.Reopen, 0, 0, 0))));

    [RequiresToolFact("qemu-img")]
    public void Random_operations_over_mixed_chains_with_qcow2_read_like_a_flat_disk()
    {
        var cases = from b in Gen.Choose(0, s_bases.Length - 1)
                    from ops in Gen.ListOf(s_op).Select(l => l.Take(20).ToArray())
                    select new Case(b, ops);
        Prop.ForAll(Arb.From(cases), Run).Check(Config.QuickThrowOnFailure.WithMaxTest(30));
    }

    private static void Run(Case c)
    {
        using var dir = new TempDirectory("qcow2-model");
        var model = new byte[Size];
        string top = MakeBase(dir, s_bases[c.Base], model);
        int layers = 1;
        var chain = Open(top, writable: c.Base != 4);
        try
        {
            // A compressed qemu base is a parent only: the first write goes to a child over it.
            if (c.Base == 4) AddChild(0);
            foreach (var op in c.Ops)
            {
                long len = Math.Min(op.Length, Size - op.Offset);
                switch (op.Kind)
                {
                    case OpKind.Write:
                        var data = RandomData.Bytes((int)len, op.Seed);
                        if (op.Seed % 5 == 0) Array.Clear(data);
                        chain.Write(op.Offset, data);
                        data.CopyTo(model, op.Offset);
                        break;
                    case OpKind.Zero:
                        chain.WriteZeroes(op.Offset, len);
                        Array.Clear(model, (int)op.Offset, (int)len);
                        break;
                    case OpKind.Child when layers < MaxLayers:
                        AddChild(op.Seed);
                        break;
                    case OpKind.Reopen:
                        chain.Dispose();
                        chain = Open(top, writable: true);
                        AssertSame(chain, model);
                        break;
                }
            }
            AssertSame(chain, model);
        }
        finally
        {
            chain.Dispose();
        }
        using var reopened = DiskImage.Open(top);
        AssertSame(reopened, model);
        foreach (var layer in reopened.Layers.Where(l => l.Format == ImageFormat.Qcow2))
        {
            AssertClean(layer.Check());
            var (code, output) = QemuCheck(layer.Path);
            Assert.True(code == 0, $"qemu-img check {layer.Path}: {output}");
        }

        void AddChild(int kind)
        {
            chain.Dispose();
            string child = dir.File($"l{layers++}.qcow2");
            string parentFormat = DiskImage.OpenLayer(top, false) is var p ? Done(p, p.Format.ToString().ToLowerInvariant()) : "";
            switch (kind)
            {
                case 1:
                    QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16k", "-b", Path.GetFileName(top), "-F", parentFormat, child);
                    break;
                case 2:
                    QemuImg("create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4k", "-b", Path.GetFileName(top), "-F", parentFormat, child);
                    break;
                case 3:
                    QemuImg("create", "-f", "qcow2", "-o", "refcount_bits=1,cluster_size=4k", "-b", Path.GetFileName(top), "-F", parentFormat, child);
                    break;
                default:
                    DiskImage.CreateDifferencing(child, top).Dispose();
                    break;
            }
            top = child;
            chain = Open(top, writable: true);
            Assert.Equal(layers, chain.Layers.Count);
        }
    }

    private static string Done(IDiskLayer layer, string value)
    {
        layer.Dispose();
        return value;
    }

    private static DiskChain Open(string path, bool writable) => DiskImage.Open(path, writable ? OpenOptions.ReadWrite : OpenOptions.ReadOnly);

    private static string MakeBase(TempDirectory dir, string kind, byte[] model)
    {
        switch (kind)
        {
            case "qcow2-compressed":
                string raw = MakeRaw(dir.File("content.raw"), Size, 77);
                File.ReadAllBytes(raw).CopyTo(model, 0);
                string q = dir.File("l0.qcow2");
                QemuImg("convert", "-c", "-O", "qcow2", "-o", "cluster_size=16k", raw, q);
                File.Delete(raw);
                return q;
            default:
                string path = dir.File("l0." + (kind == "raw" ? "img" : kind));
                DiskImage.Create(path, new ImageCreateOptions(Size, BlockSize: kind == "raw" ? null : 1 << 20)).Dispose();
                return path;
        }
    }

    private static void AssertSame(DiskChain chain, byte[] model)
    {
        var actual = new byte[Size];
        chain.Read(0, actual);
        int diff = actual.AsSpan().CommonPrefixLength(model);
        Assert.True(diff == model.Length, $"first difference at byte {diff} in a chain of {chain.Layers.Count}");
        foreach (var e in chain.GetExtents(0, Size).Where(e => e.Kind != ExtentKind.Data))
            Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"extent {e} is not zero in the model");
    }
}
