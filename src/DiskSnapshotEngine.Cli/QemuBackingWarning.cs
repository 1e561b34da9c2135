using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// After a verb gave a qcow2 image a parent (create --parent, clone --linked, rebase): a qcow2 child is made to be run by
/// QEMU, which follows only qcow2 backing files. Below the last qcow2 layer it opens one image of another format as a
/// base: a differencing VHDX or VDI there makes QEMU refuse the chain, and a differencing VHD is worse, read by QEMU's
/// vpc driver as a dynamic disk without its parent (wrong content, no error). dse reads the chain whole, so the child
/// is kept; the warning says QEMU needs it served or a base image under it.
/// </summary>
internal static class QemuBackingWarning
{
    public static void WarnIfQemuCannotFollow(CliContext context, string image, OpenOptions? options = null)
    {
        // The verb has succeeded: a chain that does not open now (a link loop, a link the kernel's fs.protected_symlinks
        // refuses, a file this user may not read) is left to the verbs that read it, never turned into this verb's
        // failure. The chain is opened at the name as given, as the verbs open it (IO/NamedImage: QEMU's rule too, a
        // relative backing name is looked for beside the link), and the kernel follows the links.
        string path = Path.GetFullPath(image);
        (string Path, ImageFormat Format)? stop;
        try
        {
            using (var top = DiskImage.OpenLayer(path, writable: false))
                if (top.Format != ImageFormat.Qcow2) return;
            using var chain = DiskImage.Open(path, options ?? OpenOptions.ReadOnly);
            int at = LibvirtDomainXml.FirstUnfollowed(chain.Layers.Select(l => MediumFormats.Of(l.Format)).ToArray());
            stop = at < 0 ? null : (chain.Layers[at].Path, chain.Layers[at].Format);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DiskImageException)
        {
            return;
        }
        if (stop is not { } below) return;
        string format = below.Format.Name().ToUpperInvariant();
        // A flat qcow2 copy next to the differencing image: clone tells the output format from the extension.
        string flat = Path.Combine(Path.GetDirectoryName(below.Path)!, Path.GetFileNameWithoutExtension(below.Path) + "-flat.qcow2");
        string what = below.Format == ImageFormat.Vhd
            ? "QEMU reads a differencing VHD as if it had no parent: the guest would see the wrong content, without an error"
            : "QEMU refuses to open it";
        context.Warn($"QEMU cannot run {path} by itself: {below.Path} is a differencing {format}, and QEMU follows only qcow2 backing files " +
            $"({what}); serve the chain (dse serve {ShellWords.Quote(path)} --socket PATH, or dse vm register libvirt) " +
            $"or give the qcow2 a base image to read through (dse clone {ShellWords.Quote(below.Path)} {ShellWords.Quote(flat)}, then dse rebase {ShellWords.Quote(path)} --parent {ShellWords.Quote(flat)})");
    }
}
