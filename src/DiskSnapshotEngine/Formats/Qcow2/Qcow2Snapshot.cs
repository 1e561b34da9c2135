using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Snapshots": one entry of the snapshot table (an internal snapshot: its own L1 table over shared clusters).
/// <code>
/// 0 l1_table_offset  8 l1_size  12 id_str_size  14 name_size  16 date_sec  20 date_nsec  24 vm_clock_nsec
/// 32 vm_state_size  36 extra_data_size  40 extra data (40 vm_state_size_large, 48 disk_size)  then id, name, padding to 8
/// </code>
/// </summary>
internal sealed record Qcow2Snapshot(long L1TableOffset, uint L1Size, string Id, string Name, DateTimeOffset Date,
    long VmStateSize, ulong? DiskSize, long EntryOffset, long EntryEnd)
{
    /// <summary>qemu's limits: 65536 snapshots and a 64 MiB table, which bound what a hostile header can make us read.</summary>
    public const uint MaxCount = 65536;
    public const long MaxTableBytes = 64L << 20;
    private const int FixedSize = 40;

    /// <summary>Reads the whole snapshot table with bounded memory (each entry is at most 40 + 2 x 64 KiB + extra bytes).</summary>
    /// <exception cref="DiskImageException">CorruptImage when an entry runs past the file or the table limit.</exception>
    public static List<Qcow2Snapshot> ReadTable(IImageFile file, string path, long offset, uint count)
    {
        var list = new List<Qcow2Snapshot>((int)Math.Min(count, 1024));
        long at = offset;
        var head = new byte[FixedSize];
        for (uint n = 0; n < count; n++)
        {
            if (at - offset + FixedSize > MaxTableBytes)
                ThrowHelper.Corrupt(path, "snapshot table", offset, $"the snapshot table is larger than {MaxTableBytes >> 20} MiB");
            file.ReadExactly(head, at, "snapshot table");
            var h = head.AsSpan();
            long l1Offset = (long)BinaryPrimitives.ReadUInt64BigEndian(h);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(h[8..]);
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(h[12..]);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(h[14..]);
            uint sec = BinaryPrimitives.ReadUInt32BigEndian(h[16..]);
            uint nsec = BinaryPrimitives.ReadUInt32BigEndian(h[20..]);
            long vmState = BinaryPrimitives.ReadUInt32BigEndian(h[32..]);
            uint extraSize = BinaryPrimitives.ReadUInt32BigEndian(h[36..]);
            if (extraSize > 1024)
                ThrowHelper.Corrupt(path, "snapshot table", at + 36, $"snapshot {n}: extra_data_size {extraSize} is above qemu's 1024");
            var rest = new byte[extraSize + idSize + nameSize];
            file.ReadExactly(rest, at + FixedSize, "snapshot table");
            ulong? diskSize = null; // as stored: Qcow2Header.CheckVirtualSize refuses what is beyond reach, naming it
            if (extraSize >= 8) vmState = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(rest), long.MaxValue);
            if (extraSize >= 16) diskSize = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(8));
            string id = Encoding.UTF8.GetString(rest, (int)extraSize, idSize);
            string name = Encoding.UTF8.GetString(rest, (int)extraSize + idSize, nameSize);
            var date = DateTimeOffset.FromUnixTimeSeconds(sec).AddTicks(Math.Min(nsec, 999_999_999u) / 100);
            long next = at + ((FixedSize + rest.Length + 7) & ~7L);
            list.Add(new Qcow2Snapshot(l1Offset, l1Size, id, name, date, vmState, diskSize, at, next));
            at = next;
        }
        return list;
    }
}
