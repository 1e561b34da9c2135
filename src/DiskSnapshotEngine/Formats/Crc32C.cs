using System.Buffers.Binary;
using System.Numerics;

namespace DiskSnapshotEngine.Formats;

/// <summary>CRC-32C (Castagnoli) as MS-VHDX 2.2.2 uses it (initial value ~0, final xor ~0); also the checksum of dse's own VDI records.</summary>
internal static class Crc32C
{
    /// <summary>CRC-32C state before the first byte.</summary>
    public const uint Seed = 0xFFFFFFFF;

    /// <summary>Feeds <paramref name="data"/> into a running CRC-32C (the one loop every checksum here uses).</summary>
    public static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }

    /// <summary>The checksum of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Update(Seed, data);

    /// <summary>CRC of a structure whose 4-byte checksum field at <paramref name="checksumOffset"/> counts as zero.</summary>
    public static uint ComputeWithZeroField(ReadOnlySpan<byte> data, int checksumOffset)
    {
        uint crc = Update(Seed, data[..checksumOffset]);
        crc = BitOperations.Crc32C(crc, 0u);
        return ~Update(crc, data[(checksumOffset + 4)..]);
    }
}
