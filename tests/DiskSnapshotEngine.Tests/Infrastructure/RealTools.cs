using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// The third-party tools' verdict on a chain a model test finished: qemu-img check on every layer qemu can check
/// (qcow2 anywhere, VHDX and VDI as a base: qemu opens no VHDX or VDI child, no VHDX of 4096-byte sectors), and the whole chain read by an independent
/// reader equal to the flat model: qemu-img compare when qemu can open the chain (a base of any format under qcow2
/// layers only), vhdimount for a VHD differencing chain (qemu's vpc driver has no differencing images). VHDX and VDI
/// children are read by neither (libvhdi reads a VHDX ZERO block from the parent), so only their bases are checked.
/// </summary>
public static class RealTools
{
    /// <summary>Checks the chain of <paramref name="top"/> with the real tools; returns what read it (for the test's output).</summary>
    public static string AssertReadsModel(string top, byte[] model, string when)
    {
        List<(ImageFormat Format, string Path, bool Child, bool QemuOpens)> layers;
        using (var chain = DiskImage.Open(top))
            layers = chain.Layers.Select(l => (l.Format, l.Path, l.ParentLink is not null, QemuOpens(l))).ToList();
        foreach (var (format, path, _, qemuOpens) in layers)
            if (qemuOpens && format is ImageFormat.Qcow2 or ImageFormat.Vhdx or ImageFormat.Vdi)
            {
                var (code, o, e) = ExternalTool.Run("qemu-img", "check", "-f", QemuName(format), path);
                Assert.True(code == 0, $"{when}: qemu-img check {path} exited {code}: {o}{e}");
            }

        bool qemuReads = layers.All(l => l.QemuOpens);
        bool vhdChain = layers.Count > 1 && layers.All(l => l.Format == ImageFormat.Vhd);
        if (!qemuReads && !(vhdChain && FuseMount.Unavailable("vhdimount") is null)) return "qemu-img check of the base";

        string raw = top + ".model.raw";
        File.WriteAllBytes(raw, model);
        try
        {
            if (qemuReads)
            {
                var (code, o, e) = ExternalTool.Run("qemu-img", "compare", "-f", QemuName(layers[0].Format), "-F", "raw", top, raw);
                Assert.True(code == 0, $"{when}: qemu-img compare {top} with the model exited {code}: {o}{e}");
                return "qemu-img compare";
            }
            string mountPoint = top + ".mnt";
            using (var mount = FuseMount.Mount("vhdimount", top, mountPoint))
            {
                // vhdimount numbers the chain from the base: the last file is the whole chain.
                string copy = top + ".vhdimount.raw";
                mount.CopyOut($"vhdi{layers.Count}", copy);
                long same = Operations.OpsKit.FirstDifference(model, File.ReadAllBytes(copy));
                File.Delete(copy);
                Assert.True(same < 0, $"{when}: vhdimount reads {top} differently from the model at byte {same}");
            }
            Directory.Delete(mountPoint);
            return "vhdimount";
        }
        finally
        {
            File.Delete(raw);
        }
    }

    // qemu opens no VHDX or VDI child, and no VHDX with 4096-byte logical sectors (ENOTSUP); VHD children are read as
    // bases (its vpc driver ignores the parent), so they count as unreadable too.
    private static bool QemuOpens(IDiskLayer layer) =>
        layer.Format is ImageFormat.Qcow2 or ImageFormat.Raw
        || (layer.ParentLink is null && (layer.Format != ImageFormat.Vhdx || layer.LogicalSectorSize == 512));

    private static string QemuName(ImageFormat format) => format switch
    {
        ImageFormat.Vhd => "vpc", // a fixed VHD has no header at the start: qemu's probe would call it raw
        _ => format.ToString().ToLowerInvariant(),
    };
}
