using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>One qcow2.txt "Header extensions" entry: its type and data (without the padding).</summary>
internal sealed record Qcow2HeaderExtension(uint Type, byte[] Data);

/// <summary>
/// qcow2.txt "Header extensions": the (type, length, data, padding to 8) entries after the header up to the end
/// marker, then the backing file name, all inside the first cluster. Every extension is kept in its order, the
/// ones we do not know byte for byte, so that a header rewrite (new backing file, cleared autoclear bits) loses
/// nothing another program stored there.
/// </summary>
internal sealed class Qcow2HeaderExtensions
{
    public const uint End = 0x00000000;
    public const uint BackingFormat = 0xE2792ACA;
    public const uint FeatureNameTable = 0x6803F857;
    public const uint Bitmaps = 0x23852875;
    public const uint FullDiskEncryption = 0x0537BE77;
    public const uint ExternalDataFile = 0x44415441;
    /// <summary>
    /// dse's seal (type "dseS"; qcow2.txt: an unknown extension "can be safely ignored", and qemu keeps unknown ones
    /// when it rewrites the header): the <see cref="SealValue"/>. Always optional: no feature bit refers to it.
    /// </summary>
    public const uint DseSeal = 0x64736553;
    /// <summary>
    /// dse's id of the image (type "dseI", 16 bytes): qcow2 has no image id, and a parent's seal must recognise its sole
    /// linked clone (<see cref="Block.SoleChild"/>). Written when dse creates the image; optional like <see cref="DseSeal"/>.
    /// </summary>
    public const uint DseId = 0x64736549;

    private readonly List<Qcow2HeaderExtension> _items;

    private Qcow2HeaderExtensions(List<Qcow2HeaderExtension> items) => _items = items;

    public IReadOnlyList<Qcow2HeaderExtension> Items => _items;

    public static Qcow2HeaderExtensions Empty() => new(new List<Qcow2HeaderExtension>());

    /// <summary>Parses the extension area of the header cluster <paramref name="cluster"/> starting at <paramref name="start"/>.</summary>
    /// <exception cref="DiskImageException">CorruptImage when an extension runs past the cluster.</exception>
    public static Qcow2HeaderExtensions Parse(ReadOnlySpan<byte> cluster, int start, string path)
    {
        var items = new List<Qcow2HeaderExtension>();
        int at = start;
        while (true)
        {
            // A header cluster without an end marker simply ends: qemu stops at the cluster end too.
            if (at + 8 > cluster.Length) break;
            uint type = BinaryPrimitives.ReadUInt32BigEndian(cluster[at..]);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(cluster[(at + 4)..]);
            if (type == End) break;
            if (length > cluster.Length - at - 8)
                ThrowHelper.Corrupt(path, "header extension", at, $"extension 0x{type:x8} of {length} bytes runs past the header cluster ({cluster.Length} bytes)");
            if (type is BackingFormat or Bitmaps or FullDiskEncryption or ExternalDataFile && items.Any(i => i.Type == type))
                ThrowHelper.Corrupt(path, "header extension", at, $"extension 0x{type:x8} appears twice");
            items.Add(new Qcow2HeaderExtension(type, cluster.Slice(at + 8, (int)length).ToArray()));
            at += 8 + Align8((int)length);
        }
        return new Qcow2HeaderExtensions(items);
    }

    private static int Align8(int n) => (n + 7) & ~7;

    public Qcow2HeaderExtension? Find(uint type) => _items.FirstOrDefault(i => i.Type == type);

    /// <summary>The backing format name (backing_fmt), or null.</summary>
    public string? BackingFormatName => Find(BackingFormat) is { } e ? Encoding.UTF8.GetString(e.Data) : null;

    /// <summary>Sets or removes the backing format extension, keeping its place among the others.</summary>
    public void SetBackingFormat(string? name)
    {
        int i = _items.FindIndex(e => e.Type == BackingFormat);
        if (name is null)
        {
            if (i >= 0) _items.RemoveAt(i);
            return;
        }
        var e = new Qcow2HeaderExtension(BackingFormat, Encoding.UTF8.GetBytes(name));
        if (i >= 0) _items[i] = e;
        else _items.Insert(0, e);
    }

    /// <summary>The seal the dse seal extension records (none without one).</summary>
    public (Block.SealReasons Seal, Block.SoleChild Sole) Seal =>
        Find(DseSeal) is { } e ? SealValue.Parse(e.Data) : (Block.SealReasons.None, Block.SoleChild.Unknown);

    /// <summary>Sets dse's seal extension (appended after the others when new; an unsealed image keeps it with 0).</summary>
    public void SetSeal(Block.SealReasons seal, Block.SoleChild sole = default) => Set(DseSeal, SealValue.ToBytes(seal, sole));

    /// <summary>dse's id of the image (<see cref="DseId"/>), or <see cref="Guid.Empty"/> when it has none (made by another program).</summary>
    public Guid Id => Find(DseId) is { Data.Length: 16 } e ? new Guid(e.Data) : Guid.Empty;

    /// <summary>Sets dse's id extension.</summary>
    public void SetId(Guid id) => Set(DseId, id.ToByteArray());

    private void Set(uint type, byte[] data)
    {
        var e = new Qcow2HeaderExtension(type, data);
        int i = _items.FindIndex(x => x.Type == type);
        if (i >= 0) _items[i] = e;
        else _items.Add(e);
    }

    /// <summary>Whether this engine interprets extensions of <paramref name="type"/>; the others are kept as they are.</summary>
    public static bool IsKnown(uint type) =>
        type is BackingFormat or FeatureNameTable or Bitmaps or FullDiskEncryption or ExternalDataFile or DseSeal or DseId;

    /// <summary>Keeps <paramref name="extension"/> byte for byte (replacing one of its type).</summary>
    public void Keep(Qcow2HeaderExtension extension) => Set(extension.Type, extension.Data);

    /// <summary>Removes dse's seal extension (undoing a failed <see cref="SetSeal"/>).</summary>
    public void RemoveSeal() => _items.RemoveAll(x => x.Type == DseSeal);

    /// <summary>Feature names from the feature name table (type 0 incompatible, 1 compatible, 2 autoclear).</summary>
    public IReadOnlyDictionary<(int Type, int Bit), string> FeatureNames()
    {
        var names = new Dictionary<(int, int), string>();
        foreach (var e in _items.Where(i => i.Type == FeatureNameTable))
        {
            for (int at = 0; at + 48 <= e.Data.Length; at += 48)
            {
                var name = e.Data.AsSpan(at + 2, 46);
                int nul = name.IndexOf((byte)0);
                names.TryAdd((e.Data[at], e.Data[at + 1]), Encoding.UTF8.GetString(nul >= 0 ? name[..nul] : name));
            }
        }
        return names;
    }

    /// <summary>The bytes the extensions take, with the end marker.</summary>
    public int SerializedLength => _items.Sum(e => 8 + Align8(e.Data.Length)) + 8;

    /// <summary>Writes the extensions and the end marker; returns the bytes written.</summary>
    public int WriteTo(Span<byte> dest)
    {
        int at = 0;
        foreach (var e in _items)
        {
            BinaryPrimitives.WriteUInt32BigEndian(dest[at..], e.Type);
            BinaryPrimitives.WriteUInt32BigEndian(dest[(at + 4)..], (uint)e.Data.Length);
            e.Data.CopyTo(dest[(at + 8)..]);
            dest.Slice(at + 8 + e.Data.Length, Align8(e.Data.Length) - e.Data.Length).Clear();
            at += 8 + Align8(e.Data.Length);
        }
        dest.Slice(at, 8).Clear();
        return at + 8;
    }
}
