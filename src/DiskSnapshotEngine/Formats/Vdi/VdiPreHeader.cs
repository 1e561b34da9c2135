using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Formats.Vdi;

// VDICore.h VDIPREHEADER: 64 bytes of text for the eye, then the signature and the version (major << 16 | minor).
internal static class VdiPreHeader
{
    /// <summary>sizeof(VDIPREHEADER).</summary>
    public const int Size = 72;

    /// <summary>VDI_IMAGE_SIGNATURE, little-endian at offset 64.</summary>
    public const uint Signature = 0xBEDA107F;

    /// <summary>Version 1.1, what VirtualBox and qemu write.</summary>
    public const uint Version11 = 0x00010001;

    public const int SignatureOffset = 64;
    public const int VersionOffset = 68;
    private const int FileInfoLength = 64;

    /// <summary>The text we put in szFileInfo; readers ignore it, it only tells a human what wrote the file.</summary>
    public const string FileInfo = "<<< DiskSnapshotEngine VirtualBox Disk Image >>>\n";

    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        head.Length >= Size && BinaryPrimitives.ReadUInt32LittleEndian(head[SignatureOffset..]) == Signature;

    public static uint ReadVersion(ReadOnlySpan<byte> head) => BinaryPrimitives.ReadUInt32LittleEndian(head[VersionOffset..]);

    public static string ReadFileInfo(ReadOnlySpan<byte> head)
    {
        var text = head[..FileInfoLength];
        int nul = text.IndexOf((byte)0);
        if (nul >= 0) text = text[..nul];
        return Encoding.ASCII.GetString(text).TrimEnd('\n');
    }

    public static void Write(Span<byte> dest)
    {
        dest[..Size].Clear();
        Encoding.ASCII.GetBytes(FileInfo, dest[..FileInfoLength]);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[SignatureOffset..], Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(dest[VersionOffset..], Version11);
    }
}
