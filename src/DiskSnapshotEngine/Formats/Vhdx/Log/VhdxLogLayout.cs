namespace DiskSnapshotEngine.Formats.Vhdx.Log;

/// <summary>Constants and the checksum shared by the log reader and writer (MS-VHDX 2.3.1, 2.3.3).</summary>
internal static class VhdxLogLayout
{
    /// <summary>The log is made of 4 KiB sectors; entries, descriptors' FileOffset and ZeroLength are multiples of it.</summary>
    public const int SectorSize = 4096;

    /// <summary>Largest file offset accepted from a log entry (well past the 64 TiB VHDX limit; rejects overflowing values).</summary>
    public const long MaxFileOffset = 1L << 50;

    /// <summary>CRC-32C state before the first byte (the final value is the bitwise complement, as usual for CRC-32C).</summary>
    public const uint CrcSeed = Crc32C.Seed;

    /// <summary>Feeds <paramref name="data"/> into a running CRC-32C (entries are checksummed sector by sector).</summary>
    public static uint CrcUpdate(uint crc, ReadOnlySpan<byte> data) => Crc32C.Update(crc, data);

    public static uint CrcFinish(uint crc) => ~crc;
}
