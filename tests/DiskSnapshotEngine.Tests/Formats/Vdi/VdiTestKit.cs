using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>Small helpers shared by the VDI tests.</summary>
internal static class VdiTestKit
{
    public const int MiB = 1 << 20;

    public static IDiskLayer CreateVdi(string path, long size, ImageType type = ImageType.Dynamic, int? blockSize = null, ImageIdentity? identity = null) =>
        DiskImage.Create(path, new ImageCreateOptions(size, type, blockSize, Identity: identity));

    /// <summary>Exports the chain's content to a raw file (sparse: zero runs are skipped).</summary>
    public static void ExportRaw(DiskChain chain, string rawPath)
    {
        using var f = new FileStream(rawPath, FileMode.CreateNew, FileAccess.Write);
        f.SetLength(chain.VirtualSize);
        var buffer = new byte[MiB];
        for (long at = 0; at < chain.VirtualSize; at += buffer.Length)
        {
            int n = (int)Math.Min(buffer.Length, chain.VirtualSize - at);
            chain.Read(at, buffer.AsSpan(0, n));
            if (SpanHelpers.IsAllZero(buffer.AsSpan(0, n))) continue;
            f.Position = at;
            f.Write(buffer, 0, n);
        }
    }

    public static Dictionary<string, string> DetailsOf(IDiskLayer layer) => layer.Details.ToDictionary(kv => kv.Key, kv => kv.Value);

    public static IDiskLayer OpenLayer(IImageFile file, bool writable) => new VdiDriver().Open(file, writable);

    /// <summary>Removes dse's parent locator from a child (its magic), leaving it as VirtualBox makes children: linked by identity only.</summary>
    public static void RemoveLocator(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = 512;
        f.Write(new byte[8]);
    }
}
