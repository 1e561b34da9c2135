using System.Buffers.Binary;
using System.Numerics;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

/// <summary>Constants and the checksum shared by the log reader and writer (MS-VHDX 2.3.1, 2.3.3).</summary>
internal static class VhdxLogLayout
{
    /// <summary>The log is made of 4 KiB sectors; entries, descriptors' FileOffset and ZeroLength are multiples of it.</summary>
    public const int SectorSize = 4096;

    /// <summary>Largest file offset accepted from a log entry (well past the 64 TiB VHDX limit; rejects overflowing values).</summary>
    public const long MaxFileOffset = 1L << 50;

    /// <summary>CRC-32C state before the first byte (the final value is the bitwise complement, as usual for CRC-32C).</summary>
    public const uint CrcSeed = 0xFFFFFFFF;

    /// <summary>Feeds <paramref name="data"/> (a multiple of 8 bytes) into a running CRC-32C.</summary>
    public static uint CrcUpdate(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8) crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }

    public static uint CrcFinish(uint crc) => ~crc;
}
