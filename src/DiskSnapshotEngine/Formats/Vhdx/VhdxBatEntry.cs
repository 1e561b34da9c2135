using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

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
