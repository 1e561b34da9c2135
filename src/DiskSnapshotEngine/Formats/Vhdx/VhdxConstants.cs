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
    /// <summary>
    /// ItemId of dse's seal item: a user metadata item (MS-VHDX 2.6.1.2: IsUser = 1, IsRequired = 0, so every reader
    /// that does not know it may ignore it; qemu and libvhdi do) holding the 8-byte <see cref="SealValue"/>. It lives in
    /// the metadata region, so setting it goes through the log and never touches DataWriteGuid (the children's check).
    /// </summary>
    public static readonly Guid DseSealItem = new("F02285EF-D4C6-4B36-89D1-5601D03C0DE7");
    /// <summary>LocatorType of the VHDX parent locator (MS-VHDX 2.6.2.6.1).</summary>
    public static readonly Guid VhdxParentLocatorType = new("B04AEFB7-D19E-4A81-B789-25B8E9445913");
}
