using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.2.3 Region Table (64 KiB, two copies).</summary>
internal sealed class VhdxRegionTable
{
    public const uint Signature = 0x69676572; // "regi"
    public const int MaxEntries = 2047;

    public VhdxRegionTable(IReadOnlyList<VhdxRegionTableEntry> entries) => Entries = entries;

    public IReadOnlyList<VhdxRegionTableEntry> Entries { get; }

    /// <summary>Parses a table; null on a bad signature or checksum, throws on an impossible entry count.</summary>
    public static VhdxRegionTable? TryParse(ReadOnlySpan<byte> b, string path, long fileOffset)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(b) != Signature) return null;
        if (Crc32C.ComputeWithZeroField(b[..VhdxConstants.RegionTableSize], 4) != BinaryPrimitives.ReadUInt32LittleEndian(b[4..])) return null;
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]);
        if (count > MaxEntries)
            ThrowHelper.Corrupt(path, "region table", fileOffset, $"EntryCount {count} exceeds {MaxEntries}");
        var entries = new List<VhdxRegionTableEntry>((int)count);
        for (int i = 0; i < count; i++)
        {
            var e = b.Slice(16 + 32 * i, 32);
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(e[16..]);
            if (off > long.MaxValue / 2)
                ThrowHelper.Corrupt(path, "region table entry", fileOffset + 16 + 32 * i, $"FileOffset {off} is impossible");
            entries.Add(new VhdxRegionTableEntry(new Guid(e[..16]), (long)off,
                BinaryPrimitives.ReadUInt32LittleEndian(e[24..]), (BinaryPrimitives.ReadUInt32LittleEndian(e[28..]) & 1) != 0));
        }
        return new VhdxRegionTable(entries);
    }

    public void Write(Span<byte> b)
    {
        b[..VhdxConstants.RegionTableSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], (uint)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            var e = b.Slice(16 + 32 * i, 32);
            Entries[i].Guid.TryWriteBytes(e);
            BinaryPrimitives.WriteUInt64LittleEndian(e[16..], (ulong)Entries[i].FileOffset);
            BinaryPrimitives.WriteUInt32LittleEndian(e[24..], Entries[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(e[28..], Entries[i].Required ? 1u : 0u);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Crc32C.Compute(b[..VhdxConstants.RegionTableSize]));
    }
}
