using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// The shared chain model (<see cref="ChainModel"/>) over chains of up to 8 VHDX layers with mixed block sizes and
/// 512 or 4096-byte logical sectors: random writes, zeroing, snapshots and reopening read back equal to a flat
/// in-memory disk, before and after closing and reopening every file.
/// </summary>
public class VhdxModelTests(ITestOutputHelper output)
{
    [RequiresToolFact("qemu-img")]
    public void Random_writes_over_chains_read_back_like_a_flat_disk_also_after_reopening() => ChainModel.Check(new VhdxChain(), maxTests: 40, output);

    private sealed class VhdxChain : ChainModelFormat
    {
        private static readonly int[] s_blockSizes = { 1 << 20, 2 << 20, 4 << 20 };
        private static readonly int[] s_sectorSizes = { 512, 512, 4096 };

        // Not a multiple of any block size, so the last block is partial; a multiple of both logical sector sizes.
        public override long Size => (10 << 20) + 3 * 4096;
        public override int Unit => 1 << 20;
        public override int MaxWrite => 5 << 20;
        public override int MaxZero => 5 << 20;
        public override int MaxSteps => 25;

        // A base block size and a logical sector size, which every child keeps.
        public override int BaseVariants => s_blockSizes.Length * s_sectorSizes.Length;

        private static int SectorSize(int variant) => s_sectorSizes[variant / s_blockSizes.Length];

        public override string CreateBase(TempDirectory dir, int variant, byte[] model)
        {
            string path = dir.File("l0.vhdx");
            var options = new ImageCreateOptions(Size, BlockSize: s_blockSizes[variant % s_blockSizes.Length], LogicalSectorSize: SectorSize(variant));
            DiskImage.Create(path, options).Dispose();
            return path;
        }

        // Each child picks its own block size, so block boundaries of the layers do not line up.
        public override string CreateChild(TempDirectory dir, string parent, int index, int variant, int seed)
        {
            string child = dir.File($"l{index}.vhdx");
            using var parentLayer = DiskImage.OpenLayer(parent, false);
            var options = new ImageCreateOptions(Size, ImageType.Differencing, s_blockSizes[seed % s_blockSizes.Length], SectorSize(variant));
            new VhdxDriver().Create(ImageFile.Create(child), options, ParentDescriptor.Of(parentLayer)).Dispose();
            return child;
        }

        public override void CheckReopened(DiskChain chain)
        {
            var report = chain.Check();
            Assert.False(report.HasErrors, string.Join("\n", report.Problems));
        }
    }
}
