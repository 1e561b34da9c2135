using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// VDICore.h VDIHEADER0 (version 0.x) / VDIHEADER1 and VDIHEADER1PLUS (version 1.x), kept with the pre-header as the
/// raw bytes read from the file so that a rewrite patches only the fields we change and keeps everything else
/// (qemu's 384-byte header, VirtualBox's 400-byte one, unknown padding) as it was.
/// <code>
/// 0    VDIPREHEADER (72)      szFileInfo[64] u32Signature u32Version
/// 72   VDIHEADER1             cbHeader u32Type fFlags szComment[256] offBlocks offData LegacyGeometry(16) u32Dummy
///                             cbDisk(8) cbBlock cbBlockExtra cBlocks cBlocksAllocated uuidCreate uuidModify uuidLinkage uuidParentModify
/// 456  VDIHEADER1PLUS adds    LCHSGeometry(16)            (cbHeader = 400; qemu writes cbHeader = 384 without it)
/// </code>
/// </summary>
internal sealed class VdiHeader
{
    public const int Header1Size = 384;      // sizeof(VDIHEADER1)
    public const int Header1PlusSize = 400;  // sizeof(VDIHEADER1PLUS)
    public const int Header0Size = 348;      // sizeof(VDIHEADER0)
    public const int CommentSize = 256;

    /// <summary>Largest header we keep in memory; the file may claim more (cbHeader), the rest is left untouched.</summary>
    public const int MaxKeptBytes = VdiPreHeader.Size + Header1PlusSize;

    private readonly byte[] _raw;
    private readonly bool _v0;

    private VdiHeader(byte[] raw, bool v0)
    {
        _raw = raw;
        _v0 = v0;
    }

    /// <summary>The pre-header's u32Version.</summary>
    public uint Version => BinaryPrimitives.ReadUInt32LittleEndian(_raw.AsSpan(VdiPreHeader.VersionOffset));
    public bool IsVersion0 => _v0;
    public string FileInfo => VdiPreHeader.ReadFileInfo(_raw);

    /// <summary>Bytes of the header we write back: the pre-header plus the header fields we know.</summary>
    public ReadOnlySpan<byte> Raw => _raw;

    // Field offsets from the start of the file; VDIHEADER0 has no cbHeader, offBlocks, offData, u32Dummy or cbBlockExtra.
    private int TypeOff => _v0 ? 72 : 76;
    private int FlagsOff => _v0 ? 76 : 80;
    private int CommentOff => _v0 ? 80 : 84;
    private int LegacyOff => _v0 ? 336 : 348;
    private int CbDiskOff => _v0 ? 352 : 368;
    private int CbBlockOff => _v0 ? 360 : 376;
    private int CBlocksOff => _v0 ? 364 : 384;
    private int CBlocksAllocatedOff => _v0 ? 368 : 388;
    private int UuidCreateOff => _v0 ? 372 : 392;
    private int UuidModifyOff => _v0 ? 388 : 408;
    private int UuidLinkageOff => _v0 ? 404 : 424;
    private const int UuidParentModifyOff = 440;
    private const int LchsOff = 456;

    public uint CbHeader => _v0 ? Header0Size : U32(72);
    public uint RawType { get => U32(TypeOff); set => BinaryPrimitives.WriteUInt32LittleEndian(_raw.AsSpan(TypeOff), value); }
    public uint Flags => U32(FlagsOff);
    public string Comment
    {
        get
        {
            var s = _raw.AsSpan(CommentOff, CommentSize);
            int nul = s.IndexOf((byte)0);
            return Encoding.UTF8.GetString(nul >= 0 ? s[..nul] : s);
        }
    }

    /// <summary>offBlocks; for version 0 the map follows the header directly.</summary>
    public long OffBlocks => _v0 ? VdiPreHeader.Size + Header0Size : U32(340);

    /// <summary>offData; for version 0 the data follows the map directly.</summary>
    public long OffData => _v0 ? OffBlocks + 4L * CBlocks : U32(344);

    public VdiDiskGeometry LegacyGeometry => VdiDiskGeometry.Read(_raw.AsSpan(LegacyOff));
    public VdiDiskGeometry? LchsGeometry => !_v0 && CbHeader >= Header1PlusSize ? VdiDiskGeometry.Read(_raw.AsSpan(LchsOff)) : null;
    public ulong CbDisk { get => BinaryPrimitives.ReadUInt64LittleEndian(_raw.AsSpan(CbDiskOff)); set => BinaryPrimitives.WriteUInt64LittleEndian(_raw.AsSpan(CbDiskOff), value); }
    public uint CbBlock => U32(CbBlockOff);
    public uint CbBlockExtra => _v0 ? 0 : U32(380);
    public uint CBlocks { get => U32(CBlocksOff); set => BinaryPrimitives.WriteUInt32LittleEndian(_raw.AsSpan(CBlocksOff), value); }

    public uint CBlocksAllocated
    {
        get => U32(CBlocksAllocatedOff);
        set => BinaryPrimitives.WriteUInt32LittleEndian(_raw.AsSpan(CBlocksAllocatedOff), value);
    }

    public Guid UuidCreate { get => Uuid(UuidCreateOff); set => SetUuid(UuidCreateOff, value); }
    public Guid UuidModify { get => Uuid(UuidModifyOff); set => SetUuid(UuidModifyOff, value); }
    public Guid UuidLinkage { get => Uuid(UuidLinkageOff); set => SetUuid(UuidLinkageOff, value); }

    /// <summary>uuidParentModify; version 0 has no such field (reads as empty).</summary>
    public Guid UuidParentModify
    {
        get => _v0 ? Guid.Empty : Uuid(UuidParentModifyOff);
        set
        {
            if (_v0) throw new InvalidOperationException("VDI 0.x has no uuidParentModify");
            SetUuid(UuidParentModifyOff, value);
        }
    }

    /// <summary>File offset of cBlocksAllocated, for error messages.</summary>
    public long CBlocksAllocatedOffset => CBlocksAllocatedOff;

    private uint U32(int off) => BinaryPrimitives.ReadUInt32LittleEndian(_raw.AsSpan(off));

    // RTUUID is stored as in memory on a little-endian host: the first three fields little-endian, like a .NET Guid.
    private Guid Uuid(int off) => new(_raw.AsSpan(off, 16));
    private void SetUuid(int off, Guid g) => g.TryWriteBytes(_raw.AsSpan(off, 16));

    /// <summary>Reads and validates the header. Everything checked here is O(1): the map itself is read lazily.</summary>
    /// <exception cref="DiskImageException">InvalidFormat (no signature, too short), Unsupported (unknown version), CorruptImage (inconsistent fields).</exception>
    public static VdiHeader Read(IImageFile file)
    {
        string path = file.Path;
        var head = new byte[MaxKeptBytes];
        int n = 0;
        while (n < head.Length)
        {
            int r = file.Read(head.AsSpan(n), n);
            if (r <= 0) break;
            n += r;
        }
        if (n < VdiPreHeader.Size || !VdiPreHeader.HasSignature(head))
            ThrowHelper.InvalidFormat(path, "VDIPREHEADER", VdiPreHeader.SignatureOffset, $"no VDI signature 0x{VdiPreHeader.Signature:X8}");
        uint version = VdiPreHeader.ReadVersion(head);
        uint major = version >> 16, minor = version & 0xFFFF;
        bool v0 = major == 0;
        if (major > 1 || (major == 1 && minor > 1))
            ThrowHelper.Unsupported(path, "VDIPREHEADER", VdiPreHeader.VersionOffset, $"VDI version {major}.{minor} (this engine reads 0.x, 1.0 and 1.1)");

        int needed = VdiPreHeader.Size + (v0 ? Header0Size : Header1Size);
        if (n < needed)
            ThrowHelper.Corrupt(path, v0 ? "VDIHEADER0" : "VDIHEADER1", VdiPreHeader.Size, $"the header needs {needed} bytes but the file ends at {n}");
        var header = new VdiHeader(head, v0);
        header.Validate(file);
        return header;
    }

    private void Validate(IImageFile file)
    {
        string path = file.Path;
        string s = _v0 ? "VDIHEADER0" : "VDIHEADER1";
        if (!_v0)
        {
            uint cb = CbHeader;
            if (cb < Header1Size)
                ThrowHelper.Corrupt(path, s, 72, $"cbHeader {cb} is smaller than the {Header1Size} bytes of VDIHEADER1");
        }
        if (RawType is < (uint)VdiImageType.Normal or > (uint)VdiImageType.Diff)
            ThrowHelper.Corrupt(path, s, TypeOff, $"u32Type {RawType} is not a known image type (1 normal, 2 fixed, 3 undo, 4 differencing)");

        uint cbBlock = CbBlock;
        if (cbBlock == 0 || cbBlock % 512 != 0)
            ThrowHelper.Corrupt(path, s, CbBlockOff, $"cbBlock {cbBlock} is not a positive multiple of 512");
        if (cbBlock > VdiLayer.MaxBlockSize)
            ThrowHelper.Unsupported(path, s, CbBlockOff, $"cbBlock {cbBlock} is larger than the {VdiLayer.MaxBlockSize} bytes this engine handles");
        uint extra = CbBlockExtra;
        if (extra % 512 != 0)
            ThrowHelper.Corrupt(path, s, 380, $"cbBlockExtra {extra} is not a multiple of 512");
        // VirtualBox and qemu always write 0; a small extra area is honoured, a large one is not worth a large buffer.
        if (extra > VdiLayer.MaxBlockExtra)
            ThrowHelper.Unsupported(path, s, 380, $"cbBlockExtra {extra} is larger than the {VdiLayer.MaxBlockExtra} bytes this engine handles");

        ulong cbDisk = CbDisk;
        if (cbDisk == 0)
            ThrowHelper.Corrupt(path, s, CbDiskOff, "cbDisk is 0");
        // cBlocks must cover cbDisk exactly as VirtualBox and qemu compute it (rounded up); anything else is a header that lies.
        ulong wanted = cbDisk / cbBlock + (cbDisk % cbBlock != 0 ? 1UL : 0UL);
        if (wanted != CBlocks)
            ThrowHelper.Corrupt(path, s, CBlocksOff, $"cBlocks {CBlocks} is inconsistent with cbDisk {cbDisk} and cbBlock {cbBlock} (expected {wanted})");
        if (CBlocks >= VdiBlockMap.Zero)
            ThrowHelper.Corrupt(path, s, CBlocksOff, $"cBlocks {CBlocks} collides with the FREE/ZERO block markers");
        if (CBlocksAllocated > CBlocks)
            ThrowHelper.Corrupt(path, s, CBlocksAllocatedOff, $"cBlocksAllocated {CBlocksAllocated} exceeds cBlocks {CBlocks}");

        long headerEnd = VdiPreHeader.Size + (long)CbHeader; // in 64 bits: a cbHeader near 4 GiB must not wrap around
        long offBlocks = OffBlocks, offData = OffData;
        long mapEnd = offBlocks + 4L * CBlocks;
        if (offBlocks < headerEnd)
            ThrowHelper.Corrupt(path, s, 340, $"offBlocks {offBlocks} lies inside the header (which ends at {headerEnd})");
        if (offData < mapEnd)
            ThrowHelper.Corrupt(path, s, 344, $"offData {offData} lies inside the block map (which ends at {mapEnd})");
        // The whole map must be in the file: this is what bounds every allocation that depends on cBlocks.
        if (mapEnd > file.Length)
            ThrowHelper.Corrupt(path, "blocks array", offBlocks, $"the block map of {CBlocks} entries needs the file to reach {mapEnd} but it ends at {file.Length}");
        if ((VdiImageType)RawType is VdiImageType.Diff or VdiImageType.Undo && UuidLinkage == Guid.Empty)
            ThrowHelper.Corrupt(path, s, UuidLinkageOff, "a differencing image with an empty uuidLinkage names no parent");
    }

    /// <summary>Builds a fresh VDIHEADER1PLUS (version 1.1, cbHeader 400) as VirtualBox writes it.</summary>
    public static VdiHeader CreateNew(VdiImageType type, ulong cbDisk, uint cbBlock, uint cBlocks, long offBlocks, long offData,
        Guid uuidCreate, Guid uuidModify, Guid uuidLinkage, Guid uuidParentModify)
    {
        var raw = new byte[MaxKeptBytes];
        VdiPreHeader.Write(raw);
        var h = new VdiHeader(raw, v0: false);
        var s = raw.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s[72..], Header1PlusSize);
        BinaryPrimitives.WriteUInt32LittleEndian(s[76..], (uint)type);
        BinaryPrimitives.WriteUInt32LittleEndian(s[340..], checked((uint)offBlocks));
        BinaryPrimitives.WriteUInt32LittleEndian(s[344..], checked((uint)offData));
        // Geometry is left for VirtualBox to compute (zero cylinders/heads/sectors means "not set"); the sector size is fixed at 512.
        new VdiDiskGeometry(0, 0, 0, 512).Write(s[348..]);
        BinaryPrimitives.WriteUInt64LittleEndian(s[368..], cbDisk);
        BinaryPrimitives.WriteUInt32LittleEndian(s[376..], cbBlock);
        BinaryPrimitives.WriteUInt32LittleEndian(s[384..], cBlocks);
        h.UuidCreate = uuidCreate;
        h.UuidModify = uuidModify;
        h.UuidLinkage = uuidLinkage;
        h.UuidParentModify = uuidParentModify;
        new VdiDiskGeometry(0, 0, 0, 512).Write(s[LchsOff..]);
        return h;
    }

    /// <summary>Writes the pre-header and the known header fields back (one write of at most 472 bytes, inside the first sector).</summary>
    public void WriteTo(IImageFile file)
    {
        int len = _v0 ? VdiPreHeader.Size + Header0Size : VdiPreHeader.Size + (int)Math.Min(CbHeader, Header1PlusSize);
        file.Write(_raw.AsSpan(0, len), 0);
    }
}
