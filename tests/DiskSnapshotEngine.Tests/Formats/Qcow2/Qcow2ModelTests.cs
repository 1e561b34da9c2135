using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// The shared chain model (<see cref="ChainModel"/>) over mixed chains: random unaligned writes, zeroing, new qcow2
/// children (ours, or qemu's with extended L2 entries, version 2, or 1-bit refcounts) and close/reopen over a chain
/// whose base is raw, VHDX, VDI, qcow2 or a qemu-compressed qcow2 always read exactly like a flat in-memory disk;
/// every qcow2 layer checks clean, for us and for qemu-img.
/// </summary>
public sealed class Qcow2ModelTests(ITestOutputHelper output)
{
    [RequiresToolFact("qemu-img")]
    public void Random_operations_over_mixed_chains_with_qcow2_read_like_a_flat_disk() => ChainModel.Check(new Qcow2Chain(), maxTests: 30, output);

    private sealed class Qcow2Chain : ChainModelFormat
    {
        private static readonly string[] s_bases = { "raw", "vhdx", "vdi", "qcow2", "qcow2-compressed" };
        private const int CompressedBase = 4;

        public override long Size => 6L * MiB + 3 * 512; // a short last cluster too
        public override int Unit => 64 * KiB;
        public override int MaxWrite => 300_000;
        public override int MaxZero => 2 * MiB;
        public override int MaxLayers => 6;
        public override int MaxSteps => 20;
        public override int BaseVariants => s_bases.Length;

        // A compressed qemu base is a parent only: the first write goes to a child over it.
        public override bool BaseIsReadOnly(int variant) => variant == CompressedBase;

        public override string CreateBase(TempDirectory dir, int variant, byte[] model)
        {
            string kind = s_bases[variant];
            if (variant == CompressedBase)
            {
                string raw = MakeRaw(dir.File("content.raw"), Size, 77);
                File.ReadAllBytes(raw).CopyTo(model, 0);
                string q = dir.File("l0.qcow2");
                QemuImg("convert", "-c", "-O", "qcow2", "-o", "cluster_size=16k", raw, q);
                File.Delete(raw);
                return q;
            }
            string path = dir.File("l0." + (kind == "raw" ? "img" : kind));
            DiskImage.Create(path, new ImageCreateOptions(Size, BlockSize: kind == "raw" ? null : 1 << 20)).Dispose();
            return path;
        }

        // Seed % 4: 0 ours, 1 qemu's with extended L2 entries, 2 qemu's version 2, 3 qemu's with 1-bit refcounts.
        public override string CreateChild(TempDirectory dir, string parent, int index, int variant, int seed)
        {
            string child = dir.File($"l{index}.qcow2");
            string parentFormat;
            using (var p = DiskImage.OpenLayer(parent, false)) parentFormat = p.Format.ToString().ToLowerInvariant();
            string? options = (seed % 4) switch
            {
                1 => "extended_l2=on,cluster_size=16k",
                2 => "compat=0.10,cluster_size=4k",
                3 => "refcount_bits=1,cluster_size=4k",
                _ => null,
            };
            if (options is null) DiskImage.CreateDifferencing(child, parent).Dispose();
            else QemuImg("create", "-f", "qcow2", "-o", options, "-b", Path.GetFileName(parent), "-F", parentFormat, child);
            return child;
        }

        public override void CheckReopened(DiskChain chain)
        {
            // qemu-img check of every qcow2 layer and compare of the chain: ChainModel's RealTools.
            foreach (var layer in chain.Layers.Where(l => l.Format == ImageFormat.Qcow2))
                AssertClean(layer.Check());
        }
    }
}
