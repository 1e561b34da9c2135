using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Formats.Vdi;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>Helpers shared by the VHD tests: raw sources, qemu conversions, footer patching.</summary>
internal static class VhdTestKit
{
    public const int MiB = 1 << 20;

    public static IDiskLayer Create(string path, long size, ImageType type = ImageType.Dynamic, int? blockSize = null) =>
        DiskImage.Create(path, new ImageCreateOptions(size, type, blockSize));

    /// <summary>A sparse raw file of <paramref name="size"/> bytes with random runs at scattered, mostly unaligned offsets.</summary>
    public static void WriteRaw(string path, long size, int seed)
    {
        using var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        f.SetLength(size);
        var rng = new Random(seed);
        foreach (long at in new[] { 0, 3L * MiB + 100, 5L * MiB - 7000, size / 2 / 512 * 512 + 1, size - 70000 })
        {
            var data = new byte[Math.Min(1_500_000, size - at)];
            rng.NextBytes(data);
            f.Position = at;
            f.Write(data);
        }
    }

    /// <summary>qemu-img convert raw to vpc with the given subformat (dynamic or fixed).</summary>
    public static void QemuConvert(string raw, string vhd, string subformat, bool forceSize) =>
        ExternalTool.RunChecked("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", $"subformat={subformat}{(forceSize ? ",force_size=on" : "")}", raw, vhd);

    /// <summary>What qemu reads from a VHD, taking the size from the footer's Current Size (qemu's force_size_calc=current_size).</summary>
    public static void QemuToRaw(string vhd, string raw) =>
        ExternalTool.RunChecked("qemu-img", "convert", "--image-opts", $"driver=vpc,force_size_calc=current_size,file.filename={vhd}", "-O", "raw", raw);

    /// <summary>Rewrites the footer checksum at <paramref name="footerOffset"/> after a patch.</summary>
    public static void ResealFooter(string path, long footerOffset) => Reseal(path, footerOffset, 512, 64);

    /// <summary>Rewrites the dynamic header checksum at <paramref name="headerOffset"/> after a patch.</summary>
    public static void ResealHeader(string path, long headerOffset) => Reseal(path, headerOffset, 1024, 36);

    private static void Reseal(string path, long offset, int size, int checksumAt)
    {
        var b = new byte[size];
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        f.ReadExactly(b);
        uint sum = 0;
        for (int i = 0; i < size; i++)
            if (i < checksumAt || i >= checksumAt + 4) sum += b[i];
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(checksumAt), ~sum);
        f.Position = offset;
        f.Write(b);
    }

    public static void Patch(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        f.Write(bytes);
    }

    public static byte[] ReadAt(string path, long offset, int length)
    {
        var b = new byte[length];
        using var f = File.OpenRead(path);
        f.Position = offset;
        f.ReadExactly(b);
        return b;
    }

    /// <summary>The whole content of a chain, for small disks.</summary>
    public static byte[] Content(DiskChain chain)
    {
        var b = new byte[chain.VirtualSize];
        chain.Read(0, b);
        return b;
    }

}
