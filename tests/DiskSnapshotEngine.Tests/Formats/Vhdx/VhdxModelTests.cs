using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// Model-based property: random writes, zero-writes and snapshots over chains of up to 8 VHDX layers with mixed
/// block sizes and 512 or 4096-byte logical sectors read back equal to a flat in-memory disk, before and after closing and reopening every file.
/// </summary>
public class VhdxModelTests
{
    // Not a multiple of any block size, so the last block is partial.
    private const int Size = (10 << 20) + 3 * 4096; // a multiple of both logical sector sizes
    private static readonly int[] s_blockSizes = { 1 << 20, 2 << 20, 4 << 20 };

    /// <param name="Kind">0: snapshot (new child on top), 1: write zeros, otherwise a data write.</param>
    public sealed record Step(int Kind, int Offset, int Length, int Seed, int BlockSizeIndex)
    {
        public override string ToString() => Kind switch
        {
            0 => $"snapshot(bs={s_blockSizes[BlockSizeIndex] >> 20}M)",
            1 => $"zero({Offset},+{Length})",
            _ => $"write({Offset},+{Length},seed {Seed})",
        };
    }

    [Fact]
    public void Random_writes_over_chains_read_back_like_a_flat_disk_also_after_reopening()
    {
        var length = Gen.OneOf(Gen.Choose(1, 2000), Gen.Choose(1, 5 << 20), Gen.Choose(1, 600_000));
        var step =
            from kind in Gen.Choose(0, 9)
            from offset in Gen.Choose(0, Size - 1)
            from len in length
            from seed in Gen.Choose(0, int.MaxValue - 1)
            from bsi in Gen.Choose(0, 2)
            select new Step(kind, offset, Math.Min(len, Size - offset), seed, bsi);
        var scenario = from bsi in Gen.Choose(0, 2)
                       from sector in Gen.Elements(512, 512, 4096)
                       from steps in Gen.Choose(1, 25).SelectMany(n => Gen.ArrayOf(step, n))
                       select (bsi, sector, steps);
        Prop.ForAll(Arb.From(scenario), s => Run(s.bsi, s.sector, s.steps))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(40).WithStartSize(25));
    }

    private static bool Run(int baseBlockSizeIndex, int logicalSectorSize, Step[] steps)
    {
        using var dir = new TempDirectory("vhdx-model");
        var model = new byte[Size];
        var paths = new List<string> { dir.File("l0.vhdx") };
        DiskImage.Create(paths[0], new ImageCreateOptions(Size, BlockSize: s_blockSizes[baseBlockSizeIndex], LogicalSectorSize: logicalSectorSize)).Dispose();
        var chain = DiskImage.Open(paths[^1], OpenOptions.ReadWrite);
        try
        {
            foreach (var st in steps)
            {
                if (st.Kind == 0)
                {
                    if (paths.Count == 8) continue;
                    chain.Dispose();
                    var child = dir.File($"l{paths.Count}.vhdx");
                    using (var parent = DiskImage.OpenLayer(paths[^1], false))
                        new VhdxDriver().Create(ImageFile.Create(child),
                            new ImageCreateOptions(Size, ImageType.Differencing, s_blockSizes[st.BlockSizeIndex], logicalSectorSize), ParentDescriptor.Of(parent)).Dispose();
                    paths.Add(child);
                    chain = DiskImage.Open(child, OpenOptions.ReadWrite);
                    Assert.Equal(paths.Count, chain.Layers.Count);
                }
                else if (st.Kind == 1)
                {
                    chain.WriteZeroes(st.Offset, st.Length);
                    Array.Clear(model, st.Offset, st.Length);
                }
                else
                {
                    var data = RandomData.Bytes(st.Length, st.Seed);
                    chain.Write(st.Offset, data);
                    data.CopyTo(model, st.Offset);
                }
            }
            AssertEqual(chain, model, "before closing");
        }
        finally
        {
            chain.Dispose();
        }
        using (var reopened = DiskImage.Open(paths[^1]))
        {
            AssertEqual(reopened, model, "after reopening");
            var report = reopened.Check();
            Assert.False(report.HasErrors, string.Join("\n", report.Problems));
        }
        return true;
    }

    private static void AssertEqual(DiskChain chain, byte[] model, string when)
    {
        var back = new byte[Size];
        chain.Read(0, back);
        int i = back.AsSpan().CommonPrefixLength(model);
        Assert.True(i == Size, $"{when}: byte {i} differs (chain of {chain.Layers.Count})");
        // Extents must cover the disk and agree with the bytes.
        long covered = 0;
        foreach (var e in chain.GetExtents(0, Size))
        {
            Assert.Equal(covered, e.Offset);
            covered = e.End;
            if (e.Kind != ExtentKind.Data) Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"{when}: a {e.Kind} extent at {e.Offset} hides data");
        }
        Assert.Equal(Size, covered);
    }
}
