using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.6.1 Metadata Table (64 KiB at the start of the metadata region).</summary>
internal sealed class VhdxMetadataTable
{
    public const ulong Signature = 0x617461646174656D; // "metadata"
    public const int MaxEntries = 2047;

    public VhdxMetadataTable(List<VhdxMetadataTableEntry> entries) => Entries = entries;

    public List<VhdxMetadataTableEntry> Entries { get; }

    public static VhdxMetadataTable Parse(ReadOnlySpan<byte> b, string path, long fileOffset, uint regionLength)
    {
        if (BinaryPrimitives.ReadUInt64LittleEndian(b) != Signature)
            ThrowHelper.Corrupt(path, "metadata table", fileOffset, "signature is not \"metadata\"");
        int count = BinaryPrimitives.ReadUInt16LittleEndian(b[10..]);
        if (count > MaxEntries)
            ThrowHelper.Corrupt(path, "metadata table", fileOffset, $"EntryCount {count} exceeds {MaxEntries}");
        var entries = new List<VhdxMetadataTableEntry>(count);
        for (int i = 0; i < count; i++)
        {
            var e = b.Slice(32 + 32 * i, 32);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(e[24..]);
            var entry = new VhdxMetadataTableEntry(new Guid(e[..16]), BinaryPrimitives.ReadUInt32LittleEndian(e[16..]),
                BinaryPrimitives.ReadUInt32LittleEndian(e[20..]), (flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0);
            long at = fileOffset + 32 + 32 * i;
            // MS-VHDX 2.6.1.2: items live after the 64 KiB table and inside the region; a zero length means an empty item.
            if (entry.Length != 0 && (entry.Offset < VhdxConstants.MetadataTableSize || (long)entry.Offset + entry.Length > regionLength))
                ThrowHelper.Corrupt(path, "metadata table entry", at,
                    $"item {{{entry.ItemId}}} at [{entry.Offset}, +{entry.Length}) lies outside the metadata region of {regionLength} bytes");
            for (int j = 0; j < entries.Count; j++) // a loop, not Any(): see the note in VhdxDriver
                if (entries[j].ItemId == entry.ItemId && entries[j].IsUser == entry.IsUser)
                    ThrowHelper.Corrupt(path, "metadata table entry", at, $"item {{{entry.ItemId}}} appears twice");
            entries.Add(entry);
        }
        return new VhdxMetadataTable(entries);
    }

    public void Write(Span<byte> b)
    {
        b[..VhdxConstants.MetadataTableSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], (ushort)Entries.Count);
        for (int i = 0; i < Entries.Count; i++)
        {
            var e = b.Slice(32 + 32 * i, 32);
            Entries[i].ItemId.TryWriteBytes(e);
            BinaryPrimitives.WriteUInt32LittleEndian(e[16..], Entries[i].Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(e[20..], Entries[i].Length);
            BinaryPrimitives.WriteUInt32LittleEndian(e[24..], Entries[i].Flags);
        }
    }
}
