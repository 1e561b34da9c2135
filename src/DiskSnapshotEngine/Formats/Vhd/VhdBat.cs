namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Block Allocation Table and Data Blocks": at the dynamic header's Table Offset, Max Table Entries
/// big-endian uint32, each the absolute sector offset (512-byte units) of a block's sector bitmap, or
/// <see cref="Unused"/> for a block not in the file; the table is padded to a 512-byte sector.
/// </summary>
internal static class VhdBat
{
    public const uint Unused = 0xFFFFFFFF;

    public static BlockTable Open(IO.IImageFile file, VhdDynamicHeader header) =>
        new(file, (long)header.TableOffset, header.MaxTableEntries, bigEndian: true, "BAT");
}
