using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

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
