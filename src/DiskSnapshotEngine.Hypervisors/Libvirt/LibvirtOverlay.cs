using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>
/// A per-domain qcow2 overlay over a golden image: the linked clone KVM users make by hand with
/// <c>qemu-img create -b golden -F fmt</c>. QEMU follows the overlay's backing file and backing format by itself, so
/// the domain needs no server, and the golden image is only ever read.
/// </summary>
public static class LibvirtOverlay
{
    /// <summary>The overlay's full path, checked before anything is made.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (not a .qcow2 name); AlreadyExists.</exception>
    public static string CheckPath(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!full.EndsWith(".qcow2", StringComparison.OrdinalIgnoreCase))
            throw new DiskImageException(ErrorKind.InvalidArgument, "the overlay is a qcow2 image: give it a .qcow2 name", full);
        if (File.Exists(full) || Directory.Exists(full))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the overlay path exists; refusing to replace it", full);
        return full;
    }

    /// <summary>What <paramref name="state"/> becomes once the overlay exists (for a dry run: nothing is created).</summary>
    public static VmDiskState Planned(VmDiskState state, string overlayPath) =>
        state.WithNewCurrentChild(new MediumInfo(Guid.NewGuid(), overlayPath, MediumFormats.Qcow2, state.CurrentMedium.LogicalSize, []));

    /// <summary>
    /// Creates the overlay as a linked clone of the disk's current image and returns the overlay's state. A current image
    /// this process cannot write (<see cref="Seals.WhyNotWritable"/>) is left unsealed, as <see cref="LinkedClone.Create"/> leaves it.
    /// </summary>
    /// <param name="state">The disk whose current image becomes the overlay's parent.</param>
    /// <param name="overlayPath">The overlay's path (see <see cref="CheckPath"/>).</param>
    /// <param name="options">How the chain is opened.</param>
    /// <param name="goldenSeal">What became of the current image's seal, as <see cref="LinkedClone.Create"/> returns it.</param>
    /// <exception cref="DiskImageException">As <see cref="LinkedClone.Create"/> and <see cref="DiskImage.Open(string, OpenOptions)"/>.</exception>
    public static VmDiskState Create(VmDiskState state, string overlayPath, OpenOptions options, out ParentSeal goldenSeal)
    {
        SealForSeveralClones(state.CurrentMedium.Path, options);
        goldenSeal = LinkedClone.Create(state.CurrentMedium.Path, overlayPath, ImageFormat.Qcow2);
        try
        {
            using var chain = DiskImage.Open(overlayPath, options);
            return VmDiskStateBuilder.FromChain(chain);
        }
        catch
        {
            Remove(overlayPath);
            throw;
        }
    }

    // A VM's overlay lives as long as the VM, and a golden image serves several VMs. Sealed as 'dse seal' seals it (no
    // clone recorded as its only one), the golden is not written again when the next VM's overlay is made: a write
    // QEMU forbids while it runs the first VM (the backing file is locked against writers). A golden sealed that way
    // already, or one without a seal mark (raw), is left as it is; so is one this process cannot write (a read-only
    // mount, its mode, an immutable file), as by any linked clone: what stops this write stops every dse verb's too.
    private static void SealForSeveralClones(string golden, OpenOptions options)
    {
        using (var chain = DiskImage.Open(golden, options))
        {
            if (chain.Top is not ISealableLayer || (Seals.Of(chain.Top) != SealReasons.None && !Seals.SoleChildOf(chain.Top).IsKnown))
                return;
        }
        if (Seals.WhyNotWritable(golden) is null)
            DiskImage.Seal(golden);
    }

    /// <summary>Removes an overlay made for a registration that then failed.</summary>
    public static void Remove(string overlayPath) => DurableFiles.TryDelete(overlayPath);
}
