using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>Helpers shared by the qcow2 tests: qemu-img and qemu-io as the reference reader and writer.</summary>
internal static class Qcow2TestKit
{
    public const int KiB = 1024, MiB = 1 << 20;

    public static string QemuImg(params string[] args) => ExternalTool.RunChecked("qemu-img", args);

    /// <summary>Runs qemu-io commands on an image (each -c in order).</summary>
    public static string QemuIo(string image, params string[] commands)
    {
        var args = new List<string>();
        foreach (var c in commands) { args.Add("-c"); args.Add(c); }
        args.Add(image);
        string output = ExternalTool.RunChecked("qemu-io", args.ToArray());
        // qemu-io reports a failed command on stdout and still exits 0.
        Assert.DoesNotContain("failed", output);
        return output;
    }

    /// <summary>Asserts that our chain reads exactly what qemu-img reads (its raw conversion), and that what we call zero is zero.</summary>
    public static void AssertReadsLikeQemu(string image, string? label = null)
    {
        string raw = image + ".qemu.raw";
        QemuImg("convert", "-O", "raw", image, raw);
        try
        {
            using var chain = DiskImage.Open(image);
            using var expected = File.OpenRead(raw);
            Assert.Equal(expected.Length, chain.VirtualSize);
            var a = new byte[MiB];
            var b = new byte[MiB];
            for (long at = 0; at < chain.VirtualSize; at += MiB)
            {
                int n = (int)Math.Min(MiB, chain.VirtualSize - at);
                chain.Read(at, a.AsSpan(0, n));
                expected.Position = at;
                expected.ReadExactly(b, 0, n);
                int same = a.AsSpan(0, n).CommonPrefixLength(b.AsSpan(0, n));
                Assert.True(same == n, $"{label ?? image}: first difference with qemu at byte {at + same}");
            }
            foreach (var e in chain.GetExtents(0, chain.VirtualSize).Where(e => e.Kind != ExtentKind.Data))
            {
                var buffer = new byte[(int)Math.Min(e.Length, MiB)];
                expected.Position = e.Offset;
                expected.ReadExactly(buffer);
                Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"{label ?? image}: extent {e} is not zero for qemu");
            }
        }
        finally
        {
            File.Delete(raw);
        }
    }

    /// <summary>qemu-img check's verdict: exit code (0 clean, 2 corruptions, 3 leaks) and output.</summary>
    public static (int Code, string Output) QemuCheck(string image)
    {
        var (code, o, e) = ExternalTool.Run("qemu-img", "check", image);
        return (code, o + e);
    }

    public static void AssertQemuCheckClean(string image)
    {
        var (code, output) = QemuCheck(image);
        Assert.True(code == 0, $"qemu-img check {image} exited {code}: {output}");
    }

    /// <summary>qemu-img compare of the image against a flat model of its content.</summary>
    public static void AssertQemuReadsModel(string image, byte[] model)
    {
        string raw = image + ".model.raw";
        File.WriteAllBytes(raw, model);
        try
        {
            var (code, o, e) = ExternalTool.Run("qemu-img", "compare", "-F", "raw", image, raw);
            Assert.True(code == 0, $"qemu-img compare {image}: {o}{e}");
        }
        finally { File.Delete(raw); }
    }

    /// <summary>A raw file with data in a few places (and holes between), for qemu-img convert.</summary>
    public static string MakeRaw(string path, long size, int seed)
    {
        using var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        f.SetLength(size);
        var rng = new Random(seed);
        for (int i = 0; i < 12; i++)
        {
            long at = (long)(rng.NextDouble() * (size - 300 * KiB)) & ~511L;
            var data = RandomData.Bytes(rng.Next(1, 300 * KiB), seed + i);
            // Half of the runs compress well (repeated text), half do not.
            if (i % 2 == 0) for (int j = 0; j < data.Length; j++) data[j] = (byte)"qcow2 compressed text "[j % 22];
            f.Position = at;
            f.Write(data);
        }
        return path;
    }

    /// <summary>A big-endian 64-bit field of a file (qcow2 headers and tables are big-endian).</summary>
    public static ulong ReadU64(string path, long at)
    {
        using var f = File.OpenRead(path);
        var b = new byte[8];
        f.Position = at;
        f.ReadExactly(b);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    /// <summary>Overwrites a big-endian field of <paramref name="width"/> bytes (the low bytes of <paramref name="value"/>).</summary>
    public static void PatchBigEndian(string path, long at, ulong value, int width = 8)
    {
        var b = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(b, value);
        using var f = File.OpenWrite(path);
        f.Position = at;
        f.Write(b, 8 - width, width);
    }

    public static void AssertClean(CheckReport report) => Assert.True(report.IsClean, string.Join("\n", report.Problems));
}
