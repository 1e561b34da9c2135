namespace DiskSnapshotEngine.Block;

/// <summary>How messages name a format: in lower case, as users type it (--format qcow2, .vhdx), not as the enum spells it.</summary>
public static class ImageFormatNames
{
    /// <summary>The format's name as users type it ("qcow2", "vdi").</summary>
    public static string Name(this ImageFormat format) => format switch
    {
        ImageFormat.Raw => "raw",
        ImageFormat.Vhdx => "vhdx",
        ImageFormat.Vdi => "vdi",
        ImageFormat.Qcow2 => "qcow2",
        ImageFormat.Vhd => "vhd",
        _ => format.ToString().ToLowerInvariant(),
    };
}
