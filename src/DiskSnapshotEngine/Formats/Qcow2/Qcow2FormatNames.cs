using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qemu's block driver names, as the backing_fmt header extension stores them, against this engine's drivers
/// (qemu calls VHD "vpc"). The driver is looked up in the registry by name, so a format added later needs only a row here.
/// </summary>
internal static class Qcow2FormatNames
{
    private static readonly (string Qemu, string Driver)[] s_names =
    {
        ("raw", "raw"), ("qcow2", "qcow2"), ("vhdx", "vhdx"), ("vdi", "vdi"), ("vpc", "vhd"),
    };

    /// <summary>The format a backing_fmt names, or null when none is recorded or this engine has no such driver.</summary>
    public static ImageFormat? ToFormat(string? qemuName)
    {
        if (qemuName is null) return null;
        var row = s_names.FirstOrDefault(r => r.Qemu == qemuName);
        if (row.Driver is null) return null;
        return ImageFormats.All.FirstOrDefault(d => d.Name == row.Driver)?.Format;
    }

    /// <summary>The backing_fmt to record for a parent of <paramref name="format"/>, or null when qemu has no reader for it.</summary>
    public static string? ToQemu(ImageFormat format)
    {
        string name = ImageFormats.Get(format).Name;
        return s_names.FirstOrDefault(r => r.Driver == name).Qemu;
    }
}
