using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Hypervisors.Model;

/// <summary>
/// One image file of a disk, with the differencing images that name it as their parent. Hypervisor writers only see
/// this model, never an opened image, so a chain (from <see cref="VmDiskStateBuilder"/>) and a snapshot catalog feed them alike.
/// </summary>
/// <param name="Id">The image's own identity (VDI uuidCreate, VHDX page 83 virtual disk id; see <see cref="VmDiskStateBuilder"/>).</param>
/// <param name="Path">Absolute path of the image file.</param>
/// <param name="Format">On-disk format as VirtualBox names it: VDI, VHDX, RAW (a settings file may also name VMDK and others; see <see cref="MediumFormats"/>).</param>
/// <param name="LogicalSize">Size of the virtual disk in bytes; 0 when unknown (read back from a settings file).</param>
/// <param name="Children">Differencing images whose parent is this image (more than one where snapshots branch).</param>
/// <param name="Seal">The seal the image file carries (<see cref="SealReasons"/>): a golden image is registered so that no hypervisor writes it.</param>
public sealed record MediumInfo(Guid Id, string Path, string Format, long LogicalSize, IReadOnlyList<MediumInfo> Children,
    SealReasons Seal = SealReasons.None)
{
    /// <summary>True when linked clones may read through the image from anywhere: no hypervisor may write it.</summary>
    public bool IsGolden => (Seal & SealReasons.Golden) != 0;

    /// <summary>This medium and every descendant, parents before children.</summary>
    public IEnumerable<MediumInfo> DescendantsAndSelf()
    {
        var stack = new Stack<MediumInfo>();
        stack.Push(this);
        while (stack.Count > 0)
        {
            var m = stack.Pop();
            yield return m;
            for (int i = m.Children.Count - 1; i >= 0; i--) stack.Push(m.Children[i]);
        }
    }
}

/// <summary>A snapshot of the disk: the image that holds its frozen content, and the snapshots taken after it.</summary>
/// <param name="Id">Snapshot id (VirtualBox Snapshot/@uuid).</param>
/// <param name="Name">Display name.</param>
/// <param name="Description">Optional free text.</param>
/// <param name="Time">When the snapshot was taken.</param>
/// <param name="AttachedMediumId">The image that was attached when the snapshot was taken; it is immutable from then on.</param>
/// <param name="Children">Snapshots taken while this one was current (more than one where the tree branches).</param>
public sealed record SnapshotInfo(Guid Id, string Name, string? Description, DateTimeOffset Time, Guid AttachedMediumId,
    IReadOnlyList<SnapshotInfo> Children)
{
    /// <summary>This snapshot and every descendant, parents before children.</summary>
    public IEnumerable<SnapshotInfo> DescendantsAndSelf()
    {
        yield return this;
        foreach (var c in Children)
            foreach (var d in c.DescendantsAndSelf())
                yield return d;
    }
}

/// <summary>Names of image formats as the model carries them (VirtualBox's backend names).</summary>
public static class MediumFormats
{
    /// <summary>VirtualBox Disk Image.</summary>
    public const string Vdi = "VDI";
    /// <summary>Hyper-V VHDX.</summary>
    public const string Vhdx = "VHDX";
    /// <summary>A flat file.</summary>
    public const string Raw = "RAW";
    /// <summary>Microsoft VHD (VirtualBox's backend name for it).</summary>
    public const string Vhd = "VHD";
    /// <summary>QEMU's qcow2 (VirtualBox's backend for qcow is named QCOW).</summary>
    public const string Qcow2 = "QCOW";

    /// <summary>The model name of a core format.</summary>
    public static string Of(ImageFormat format) => format switch
    {
        ImageFormat.Vdi => Vdi,
        ImageFormat.Vhdx => Vhdx,
        ImageFormat.Raw => Raw,
        ImageFormat.Vhd => Vhd,
        ImageFormat.Qcow2 => Qcow2,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "unknown image format"),
    };
}
