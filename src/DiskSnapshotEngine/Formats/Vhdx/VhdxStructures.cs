using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

// File layout written by this driver (MS-VHDX 2.1; every region 1 MiB aligned):
//
//   0        64K       128K      192K          256K          1M        2M            3M
//   | file id | header1 | header2 | region tbl1 | region tbl2 |...| log  | metadata    | BAT ... | payload / sector bitmap blocks
//
// Other writers place the log, metadata and BAT elsewhere; only the first 1 MiB is fixed by the spec.

/// <summary>Sizes and fixed offsets of MS-VHDX 2.1-2.2.</summary>
internal static class VhdxConstants
{
    public const long KiB = 1024, MiB = 1024 * 1024;
    public const long HeaderAreaSize = MiB;
    public const long FileIdentifierOffset = 0;
    public const long Header1Offset = 64 * KiB, Header2Offset = 128 * KiB;
    public const long RegionTable1Offset = 192 * KiB, RegionTable2Offset = 256 * KiB;
    public const int HeaderSize = 4096;
    public const int RegionTableSize = 64 * 1024;
    public const int MetadataTableSize = 64 * 1024;
    public const int SectorBitmapBlockSize = 1 << 20;
    /// <summary>Sectors one sector bitmap block describes (2^23, MS-VHDX 2.5).</summary>
    public const long SectorsPerBitmapBlock = 1L << 23;
    public const long MaxVirtualSize = 64L << 40;
    public const int MinBlockSize = 1 << 20, MaxBlockSize = 256 << 20;

    public static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");
    public static readonly Guid MetadataRegion = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");
    public static readonly Guid FileParametersItem = new("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
    public static readonly Guid VirtualDiskSizeItem = new("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
    public static readonly Guid VirtualDiskIdItem = new("BECA12AB-B2E6-4523-93EF-C309E000C746");
    public static readonly Guid LogicalSectorSizeItem = new("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
    public static readonly Guid PhysicalSectorSizeItem = new("CDA348C7-445D-4471-9CC9-E9885251C556");
    public static readonly Guid ParentLocatorItem = new("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
    /// <summary>LocatorType of the VHDX parent locator (MS-VHDX 2.6.2.6.1).</summary>
    public static readonly Guid VhdxParentLocatorType = new("B04AEFB7-D19E-4A81-B789-25B8E9445913");
}

/// <summary>CRC-32C (Castagnoli) as MS-VHDX 2.2.2 uses it: initial value ~0, final xor ~0.</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = System.Numerics.BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++)
            crc = System.Numerics.BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <summary>CRC of a structure whose checksum field at <paramref name="checksumOffset"/> counts as zero.</summary>
    public static uint ComputeWithZeroField(ReadOnlySpan<byte> data, int checksumOffset)
    {
        uint crc = 0xFFFFFFFF;
        for (int i = 0; i < data.Length;)
        {
            if (i == checksumOffset)
            {
                crc = System.Numerics.BitOperations.Crc32C(crc, 0u);
                i += 4;
                continue;
            }
            int next = i < checksumOffset ? checksumOffset : data.Length;
            var part = data[i..next];
            int j = 0;
            for (; j + 8 <= part.Length; j += 8)
                crc = System.Numerics.BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(part[j..]));
            for (; j < part.Length; j++)
                crc = System.Numerics.BitOperations.Crc32C(crc, part[j]);
            i = next;
        }
        return ~crc;
    }
}

/// <summary>MS-VHDX 2.2.1 File Type Identifier: signature "vhdxfile" and a UTF-16 creator string.</summary>
internal sealed class VhdxFileIdentifier
{
    public const ulong Signature = 0x656C696678646876; // "vhdxfile"
    public const int CreatorBytes = 512;

    public VhdxFileIdentifier(string creator) => Creator = creator;

    public string Creator { get; }

    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        head.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(head) == Signature;

    public static VhdxFileIdentifier Read(IImageFile file)
    {
        Span<byte> buf = stackalloc byte[8 + CreatorBytes];
        file.ReadExactly(buf, VhdxConstants.FileIdentifierOffset, "file type identifier");
        if (!HasSignature(buf))
            ThrowHelper.InvalidFormat(file.Path, "file type identifier", 0, "signature is not \"vhdxfile\"");
        var chars = MemoryMarshalCast(buf.Slice(8, CreatorBytes));
        int nul = chars.IndexOf('\0');
        return new VhdxFileIdentifier(new string(nul < 0 ? chars : chars[..nul]));
    }

    private static ReadOnlySpan<char> MemoryMarshalCast(ReadOnlySpan<byte> bytes) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, char>(bytes);

    public void Write(Span<byte> target)
    {
        target[..(8 + CreatorBytes)].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(target, Signature);
        var bytes = Encoding.Unicode.GetBytes(Creator);
        bytes.AsSpan(0, Math.Min(bytes.Length, CreatorBytes - 2)).CopyTo(target[8..]);
    }
}

/// <summary>MS-VHDX 2.2.2 Header (4 KiB, two copies at 64 KiB and 128 KiB).</summary>
internal sealed record VhdxHeader(ulong SequenceNumber, Guid FileWriteGuid, Guid DataWriteGuid, Guid LogGuid,
    ushort LogVersion, ushort Version, uint LogLength, ulong LogOffset)
{
    public const uint Signature = 0x64616568; // "head"

    /// <summary>Parses a header; null when its signature or checksum is wrong (the other copy may still be good).</summary>
    public static VhdxHeader? TryParse(ReadOnlySpan<byte> b)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(b) != Signature) return null;
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
        if (Crc32C.ComputeWithZeroField(b[..VhdxConstants.HeaderSize], 4) != stored) return null;
        return new VhdxHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
            new Guid(b.Slice(16, 16)), new Guid(b.Slice(32, 16)), new Guid(b.Slice(48, 16)),
            BinaryPrimitives.ReadUInt16LittleEndian(b[64..]), BinaryPrimitives.ReadUInt16LittleEndian(b[66..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[68..]), BinaryPrimitives.ReadUInt64LittleEndian(b[72..]));
    }

    /// <summary>Serialises into a 4 KiB buffer with a valid checksum.</summary>
    public void Write(Span<byte> b)
    {
        b[..VhdxConstants.HeaderSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], SequenceNumber);
        FileWriteGuid.TryWriteBytes(b.Slice(16, 16));
        DataWriteGuid.TryWriteBytes(b.Slice(32, 16));
        LogGuid.TryWriteBytes(b.Slice(48, 16));
        BinaryPrimitives.WriteUInt16LittleEndian(b[64..], LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(b[66..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b[68..], LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b[72..], LogOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Crc32C.Compute(b[..VhdxConstants.HeaderSize]));
    }
}

/// <summary>MS-VHDX 2.2.3.2 Region Table Entry.</summary>
internal readonly record struct VhdxRegionTableEntry(Guid Guid, long FileOffset, uint Length, bool Required)
{
    public long End => FileOffset + Length;
}

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

/// <summary>MS-VHDX 2.6.1.2 Metadata Table Entry (Offset is relative to the metadata region).</summary>
internal readonly record struct VhdxMetadataTableEntry(Guid ItemId, uint Offset, uint Length, bool IsUser, bool IsVirtualDisk, bool IsRequired)
{
    public uint Flags => (IsUser ? 1u : 0) | (IsVirtualDisk ? 2u : 0) | (IsRequired ? 4u : 0);
}

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
            if (entries.Any(x => x.ItemId == entry.ItemId && x.IsUser == entry.IsUser))
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

/// <summary>MS-VHDX 2.6.2.1 File Parameters.</summary>
internal readonly record struct VhdxFileParameters(uint BlockSize, bool LeaveBlockAllocated, bool HasParent)
{
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (LeaveBlockAllocated ? 1u : 0) | (HasParent ? 2u : 0));
    }

    public static VhdxFileParameters Parse(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(b), (b[4] & 1) != 0, (b[4] & 2) != 0);
}

/// <summary>MS-VHDX 2.6.2.6 Parent Locator: a locator type and UTF-16 key/value pairs.</summary>
internal sealed class VhdxParentLocator
{
    public const int HeaderSize = 20, EntrySize = 12;

    public VhdxParentLocator(Guid locatorType, IReadOnlyList<KeyValuePair<string, string>> entries)
    {
        LocatorType = locatorType;
        Entries = entries;
    }

    public Guid LocatorType { get; }
    public IReadOnlyList<KeyValuePair<string, string>> Entries { get; }

    public string? this[string key] => Entries.FirstOrDefault(e => e.Key == key).Value;

    public static VhdxParentLocator Parse(ReadOnlySpan<byte> b, string path, long fileOffset)
    {
        if (b.Length < HeaderSize) ThrowHelper.Corrupt(path, "parent locator", fileOffset, $"item of {b.Length} bytes is shorter than its header");
        var type = new Guid(b[..16]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(b[18..]);
        if (HeaderSize + (long)count * EntrySize > b.Length)
            ThrowHelper.Corrupt(path, "parent locator", fileOffset, $"KeyValueCount {count} does not fit in the item of {b.Length} bytes");
        var entries = new List<KeyValuePair<string, string>>(count);
        for (int i = 0; i < count; i++)
        {
            var e = b.Slice(HeaderSize + EntrySize * i, EntrySize);
            uint ko = BinaryPrimitives.ReadUInt32LittleEndian(e), vo = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]);
            int kl = BinaryPrimitives.ReadUInt16LittleEndian(e[8..]), vl = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
            if (ko + (long)kl > b.Length || vo + (long)vl > b.Length || kl == 0 || kl % 2 != 0 || vl % 2 != 0)
                ThrowHelper.Corrupt(path, "parent locator entry", fileOffset + HeaderSize + EntrySize * i,
                    $"key [{ko}, +{kl}) or value [{vo}, +{vl}) lies outside the item of {b.Length} bytes or has an odd length");
            entries.Add(KeyValuePair.Create(Encoding.Unicode.GetString(b.Slice((int)ko, kl)), Encoding.Unicode.GetString(b.Slice((int)vo, vl))));
        }
        return new VhdxParentLocator(type, entries);
    }

    public byte[] ToBytes()
    {
        var strings = new List<byte[]>();
        foreach (var (k, v) in Entries)
        {
            strings.Add(Encoding.Unicode.GetBytes(k));
            strings.Add(Encoding.Unicode.GetBytes(v));
        }
        int size = HeaderSize + EntrySize * Entries.Count + strings.Sum(s => s.Length);
        var b = new byte[size];
        LocatorType.TryWriteBytes(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), (ushort)Entries.Count);
        int data = HeaderSize + EntrySize * Entries.Count;
        for (int i = 0; i < Entries.Count; i++)
        {
            var e = b.AsSpan(HeaderSize + EntrySize * i);
            byte[] k = strings[2 * i], v = strings[2 * i + 1];
            BinaryPrimitives.WriteUInt32LittleEndian(e, (uint)data);
            k.CopyTo(b, data);
            data += k.Length;
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], (uint)data);
            v.CopyTo(b, data);
            data += v.Length;
            BinaryPrimitives.WriteUInt16LittleEndian(e[8..], (ushort)k.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(e[10..], (ushort)v.Length);
        }
        return b;
    }
}

/// <summary>MS-VHDX 2.5.1 BAT Entry: State (3 bits), reserved (17 bits), FileOffsetMB (44 bits).</summary>
internal readonly record struct VhdxBatEntry(ulong Raw)
{
    public const int NotPresent = 0, Undefined = 1, Zero = 2, Unmapped = 3, FullyPresent = 6, PartiallyPresent = 7;
    /// <summary>Sector bitmap entry states (MS-VHDX 2.5.1.2).</summary>
    public const int SbNotPresent = 0, SbPresent = 6;

    public int State => (int)(Raw & 7);
    public long FileOffset => (long)(Raw >> 20) << 20;
    public bool ReservedBitsSet => (Raw & 0xFFFF8) != 0;

    public static VhdxBatEntry Make(int state, long fileOffset) => new(((ulong)fileOffset & ~0xFFFFFUL) | (uint)state);

    public static string StateName(int state) => state switch
    {
        NotPresent => "PAYLOAD_BLOCK_NOT_PRESENT",
        Undefined => "PAYLOAD_BLOCK_UNDEFINED",
        Zero => "PAYLOAD_BLOCK_ZERO",
        Unmapped => "PAYLOAD_BLOCK_UNMAPPED",
        FullyPresent => "PAYLOAD_BLOCK_FULLY_PRESENT",
        PartiallyPresent => "PAYLOAD_BLOCK_PARTIALLY_PRESENT",
        _ => $"reserved state {state}",
    };
}
