using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Disk Geometry" (Cylinder: 2 bytes, Heads: 1, Sectors per track/cylinder: 1) and the appendix
/// "CHS Calculation". The geometry is what an emulated ATA disk reports; the disk's size is the footer's Current Size
/// (Hyper-V, Azure, VirtualBox, libvhdi). Readers that take the size from the geometry (Virtual PC, and qemu for
/// creator applications it does not know) use the current size instead when the geometry is the maximum one.
/// </summary>
internal readonly record struct VhdDiskGeometry(ushort Cylinders, byte Heads, byte SectorsPerTrack)
{
    /// <summary>65535 cylinders, 16 heads, 255 sectors per track: the largest geometry.</summary>
    public static readonly VhdDiskGeometry Maximum = new(65535, 16, 255);

    public long Sectors => (long)Cylinders * Heads * SectorsPerTrack;

    public static VhdDiskGeometry Read(ReadOnlySpan<byte> s) => new(BinaryPrimitives.ReadUInt16BigEndian(s), s[2], s[3]);

    public void Write(Span<byte> d)
    {
        BinaryPrimitives.WriteUInt16BigEndian(d, Cylinders);
        d[2] = Heads;
        d[3] = SectorsPerTrack;
    }

    /// <summary>The appendix's algorithm: the geometry for a disk of <paramref name="size"/> bytes (its product may be smaller).</summary>
    public static VhdDiskGeometry Calculate(long size)
    {
        long totalSectors = Math.Min(size / 512, 65535L * 16 * 255);
        long sectorsPerTrack, heads, cylinderTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectorsPerTrack = 255;
            heads = 16;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
        }
        else
        {
            sectorsPerTrack = 17;
            cylinderTimesHeads = totalSectors / sectorsPerTrack;
            heads = (cylinderTimesHeads + 1023) / 1024;
            if (heads < 4) heads = 4;
            if (cylinderTimesHeads >= heads * 1024 || heads > 16)
            {
                sectorsPerTrack = 31;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
            if (cylinderTimesHeads >= heads * 1024)
            {
                sectorsPerTrack = 63;
                heads = 16;
                cylinderTimesHeads = totalSectors / sectorsPerTrack;
            }
        }
        return new((ushort)(cylinderTimesHeads / heads), (byte)heads, (byte)sectorsPerTrack);
    }

    /// <summary>
    /// The geometry we write: the calculated one when it covers the size exactly, otherwise the maximum one, as qemu's
    /// force_size images do, so that no CHS-based reader sees a smaller disk than the current size says.
    /// </summary>
    public static VhdDiskGeometry For(long size)
    {
        var calculated = Calculate(size);
        return calculated.Sectors * 512 == size ? calculated : Maximum;
    }

    public override string ToString() => $"{Cylinders}/{Heads}/{SectorsPerTrack}";
}
