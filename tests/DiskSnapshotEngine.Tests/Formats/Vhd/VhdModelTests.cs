using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// Model-based property: random unaligned writes, zeroing, snapshots (a new differencing child, up to 8 layers) and
/// close/reopen over a VHD chain always read exactly like a flat in-memory disk, and every layer checks clean. The mixed
/// variant lets a snapshot be a VDI child too (VDI links to any parent by identity; a VHD child needs a VHD parent, so
/// once a VDI is on top the chain goes on in VDI). Block sizes differ between layers so boundaries do not line up.
/// </summary>
public sealed class VhdModelTests
{
    private const int MiB = VhdTestKit.MiB;
    private const long Size = 6L * MiB + 3 * 512; // a short last block too
    private const int MaxLayers = 8;

    public enum OpKind { Write, Zero, Snapshot, Reopen }

    public sealed record Op(OpKind Kind, long Offset, int Length, int Seed)
    {
        public override string ToString() => $"{Kind}({Offset}, {Length}, seed {Seed})";
    }

    private static readonly Gen<Op> s_op =
        Gen.Frequency(
            (6, from off in Gen.Choose(0, (int)Size - 1)
                from len in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 3 * MiB)), (1, Gen.Constant(MiB)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new Op(OpKind.Write, off, len, seed)),
            (1, from off in Gen.Choose(0, (int)Size - 1)
                from len in Gen.Choose(1, 3 * MiB)
                select new Op(OpKind.Zero, off, len, 0)),
            (2, from seed in Gen.Choose(0, 3) select new Op(OpKind.Snapshot, 0, 0, seed)),
            (1, Gen.Constant(new Op(OpKind.Reopen, 0, 0, 0))));

    [Fact]
    public void Random_operations_over_a_VHD_chain_read_like_a_flat_disk() => Check(mixed: false);

    [Fact]
    public void Random_operations_over_a_VHD_base_with_VHD_and_VDI_children_read_like_a_flat_disk() => Check(mixed: true);

    private static void Check(bool mixed)
    {
        var ops = Gen.ListOf(s_op).Select(l => l.Take(24).ToArray());
        Prop.ForAll(Arb.From(ops), o => Run(o, mixed)).Check(Config.QuickThrowOnFailure.WithMaxTest(30));
    }

    private static void Run(Op[] ops, bool mixed)
    {
        using var dir = new TempDirectory("vhd-model");
        var model = new byte[Size];
        int layers = 1;
        string top = dir.File("l0.vhd");
        using (DiskImage.Create(top, new ImageCreateOptions(Size, BlockSize: 512 << 10))) { }
        var chain = DiskImage.Open(top, OpenOptions.ReadWrite);
        try
        {
            foreach (var op in ops)
            {
                long len = Math.Min(op.Length, Size - op.Offset);
                switch (op.Kind)
                {
                    case OpKind.Write:
                        var data = RandomData.Bytes((int)len, op.Seed);
                        chain.Write(op.Offset, data);
                        data.CopyTo(model, op.Offset);
                        break;
                    case OpKind.Zero:
                        chain.WriteZeroes(op.Offset, len);
                        Array.Clear(model, (int)op.Offset, (int)len);
                        break;
                    case OpKind.Snapshot when layers < MaxLayers:
                        chain.Dispose();
                        bool vdi = top.EndsWith(".vdi", StringComparison.Ordinal) || (mixed && op.Seed == 0);
                        string child = dir.File($"l{layers++}{(vdi ? ".vdi" : ".vhd")}");
                        using (DiskImage.CreateDifferencing(child, top)) { }
                        top = child;
                        chain = DiskImage.Open(top, OpenOptions.ReadWrite);
                        Assert.Equal(layers, chain.Layers.Count);
                        break;
                    case OpKind.Reopen:
                        chain.Dispose();
                        chain = DiskImage.Open(top, OpenOptions.ReadWrite);
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
        Assert.Contains(reopened.Layers, l => l.Format == ImageFormat.Vhd);
        var report = reopened.Check();
        Assert.True(report.IsClean, string.Join("; ", report.Problems));
    }

    private static void AssertSame(DiskChain chain, byte[] model)
    {
        var actual = VhdTestKit.Content(chain);
        int diff = actual.AsSpan().CommonPrefixLength(model);
        Assert.True(diff == model.Length, $"first difference at byte {diff} in a chain of {chain.Layers.Count}");
        // The extents agree with the bytes: whatever they call zero reads as zero.
        foreach (var e in chain.GetExtents(0, Size).Where(e => e.Kind != ExtentKind.Data))
            Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"extent {e} is not zero in the model");
    }
}
