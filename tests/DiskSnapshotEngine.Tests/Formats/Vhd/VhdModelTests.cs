using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// The shared chain model (<see cref="ChainModel"/>) over a VHD chain: random unaligned writes, zeroing, snapshots
/// (a new differencing child, up to 8 layers) and close/reopen always read exactly like a flat in-memory disk, and
/// every layer checks clean; qemu-img (dynamic or fixed base alone) or vhdimount (a VHD chain) reads the model. The base is
/// dynamic or fixed. The mixed variant lets a snapshot be a VDI child too (VDI links to any parent by
/// identity; a VHD child needs a VHD parent, so once a VDI is on top the chain goes on in VDI). The dynamic base's 512 KiB
/// blocks differ from the children's 2 MiB blocks, so boundaries do not line up.
/// </summary>
public sealed class VhdModelTests(ITestOutputHelper output)
{
    [RequiresToolFact("qemu-img")]
    public void Random_operations_over_a_VHD_chain_read_like_a_flat_disk() => ChainModel.Check(new VhdChain(mixed: false), maxTests: 30, output);

    [RequiresToolFact("qemu-img")]
    public void Random_operations_over_a_VHD_base_with_VHD_and_VDI_children_read_like_a_flat_disk() =>
        ChainModel.Check(new VhdChain(mixed: true), maxTests: 30, output);

    private sealed class VhdChain(bool mixed) : ChainModelFormat
    {
        public override long Size => 6L * VhdTestKit.MiB + 3 * 512; // a short last block too
        public override int Unit => VhdTestKit.MiB;
        public override int MaxWrite => 3 * VhdTestKit.MiB;
        public override int MaxZero => 3 * VhdTestKit.MiB;

        // Variant 0: a dynamic base; 1: a fixed base (its writes go in place, its children see them the same way).
        public override int BaseVariants => 2;

        public override string CreateBase(TempDirectory dir, int variant, byte[] model)
        {
            string path = dir.File("l0.vhd");
            var options = variant == 0 ? new ImageCreateOptions(Size, BlockSize: 512 << 10) : new ImageCreateOptions(Size, ImageType.Fixed);
            DiskImage.Create(path, options).Dispose();
            return path;
        }

        // One child in four is a VDI in the mixed variant; a VDI parent can only have VDI children here.
        public override string CreateChild(TempDirectory dir, string parent, int index, int variant, int seed)
        {
            bool vdi = parent.EndsWith(".vdi", StringComparison.Ordinal) || (mixed && seed % 4 == 0);
            string child = dir.File($"l{index}{(vdi ? ".vdi" : ".vhd")}");
            DiskImage.CreateDifferencing(child, parent).Dispose();
            return child;
        }

        public override void CheckReopened(DiskChain chain)
        {
            Assert.Contains(chain.Layers, l => l.Format == ImageFormat.Vhd);
            var report = chain.Check();
            Assert.True(report.IsClean, string.Join("; ", report.Problems));
        }
    }
}
