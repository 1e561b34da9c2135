using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>
/// The shared chain model (<see cref="ChainModel"/>) over a VDI chain: random unaligned writes, zeroing, snapshots
/// (new differencing child, up to 8 layers) and close/reopen always read exactly like a flat in-memory disk, and
/// every layer checks clean.
/// </summary>
public sealed class VdiModelTests(ITestOutputHelper output)
{
    [RequiresToolFact("qemu-img")]
    public void Random_operations_over_a_VDI_chain_read_like_a_flat_disk() => ChainModel.Check(new VdiChain(), maxTests: 40, output);

    private sealed class VdiChain : ChainModelFormat
    {
        public override long Size => 6L * VdiTestKit.MiB + 3 * 512; // a short last block too
        public override int Unit => VdiTestKit.MiB;
        public override int MaxWrite => 3 * VdiTestKit.MiB;
        public override int MaxZero => 3 * VdiTestKit.MiB;

        public override string CreateBase(TempDirectory dir, int variant, byte[] model)
        {
            string path = dir.File("l0.vdi");
            VdiTestKit.CreateVdi(path, Size).Dispose();
            return path;
        }

        public override string CreateChild(TempDirectory dir, string parent, int index, int variant, int seed)
        {
            string child = dir.File($"l{index}.vdi");
            DiskImage.CreateDifferencing(child, parent).Dispose();
            return child;
        }

        public override void CheckReopened(DiskChain chain)
        {
            var report = chain.Check();
            Assert.True(report.IsClean, string.Join("; ", report.Problems));
        }
    }
}
