using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

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
