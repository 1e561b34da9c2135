using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vdi;

// VDICore.h VDIDISKGEOMETRY: cCylinders, cHeads, cSectors, cbSector (4 x uint32, 16 bytes).
internal readonly record struct VdiDiskGeometry(uint Cylinders, uint Heads, uint Sectors, uint SectorSize)
{
    public const int Size = 16;

    public static VdiDiskGeometry Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s),
        BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[12..]));

    public void Write(Span<byte> d)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(d, Cylinders);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Heads);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], Sectors);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], SectorSize);
    }

    public override string ToString() => $"{Cylinders}/{Heads}/{Sectors}, {SectorSize}-byte sectors";
}
