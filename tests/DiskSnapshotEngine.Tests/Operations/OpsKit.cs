using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>Shared helpers of the operation tests: building chains with known content, reading whole disks, fault injection.</summary>
internal static class OpsKit
{
    /// <summary>Reads a whole (small) disk through its chain.</summary>
    public static byte[] ReadAll(string path, OpenOptions? options = null)
    {
        using var chain = DiskImage.Open(path, options);
        var data = new byte[chain.VirtualSize];
        chain.Read(0, data);
        return data;
    }

    /// <summary>Creates a base image of <paramref name="size"/> bytes.</summary>
    public static void CreateBase(string path, long size, int? blockSize = null)
    {
        using var l = DiskImage.Create(path, new ImageCreateOptions(size, ImageType.Dynamic, blockSize));
        l.Flush();
    }

    /// <summary>
    /// Creates a differencing child as another tool (or an older dse) makes one: the parent is not sealed, because
    /// merging into it, pulling it and rebasing are what these tests exercise (sealing has its own tests).
    /// </summary>
    public static void CreateChild(string path, string parent)
    {
        using var l = DiskImage.CreateDifferencing(path, parent, sealParentAs: SealReasons.None);
        l.Flush();
    }

    /// <summary>
    /// Makes <paramref name="count"/> random writes into the image (data of random length at random offsets, some
    /// all-zero data, some zero ranges through WriteZeroes) and applies them to <paramref name="model"/>.
    /// </summary>
    public static void RandomWrites(string path, Random rng, int count, byte[] model)
    {
        using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
        for (int i = 0; i < count; i++)
            RandomWrite(chain, rng, model);
        chain.Flush();
    }

    /// <summary>One random write into an open chain, mirrored in the model.</summary>
    public static void RandomWrite(DiskChain chain, Random rng, byte[] model)
    {
        long size = chain.VirtualSize;
        int len = rng.Next(4) switch { 0 => rng.Next(1, 700), 1 => 4096 * rng.Next(1, 64), 2 => rng.Next(1, 300_000), _ => 1 << 20 };
        len = (int)Math.Min(len, size);
        long off = rng.Next(3) == 0 ? SpanHelpers.AlignDown(rng.NextInt64(0, size - len + 1), 1 << 20) : rng.NextInt64(0, size - len + 1);
        off = Math.Min(off, size - len);
        switch (rng.Next(6))
        {
            case 0:
                chain.WriteZeroes(off, len);
                Array.Clear(model, (int)off, len);
                break;
            case 1:
                var zeros = new byte[len];
                chain.Write(off, zeros);
                Array.Clear(model, (int)off, len);
                break;
            default:
                var data = new byte[len];
                rng.NextBytes(data);
                chain.Write(off, data);
                data.CopyTo(model, off);
                break;
        }
    }

    /// <summary>Copies every file of a folder into another (fresh) folder.</summary>
    public static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.EnumerateFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)), overwrite: true);
    }

    /// <summary>First differing index of two arrays, or -1.</summary>
    public static long FirstDifference(byte[] a, byte[] b)
    {
        if (a.Length != b.Length) return Math.Min(a.Length, b.Length);
        int n = a.AsSpan().CommonPrefixLength(b);
        return n == a.Length ? -1 : n;
    }

    /// <summary>
    /// Runs the CLI with <paramref name="args"/> on <paramref name="image"/>, which <paramref name="child"/> reads
    /// through, and asserts the refusal: exit 15 (ReadOnly), the child named, the image unchanged to the byte.
    /// </summary>
    public static async Task AssertRefusedForChildAsync(string image, string child, params string[] args)
    {
        var bytes = File.ReadAllBytes(image);
        var refused = await Cli.CliRunner.RunAsync(args);
        Assert.Equal(15, refused.ExitCode);
        Assert.Contains(child, refused.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(image));
    }

    /// <summary>
    /// Resizes <paramref name="image"/> in place to <paramref name="newSize"/> with a power loss at write
    /// <paramref name="n"/>, then checks it with <see cref="AssertResizedSound"/>. Returns true when the resize completed.
    /// </summary>
    public static async Task<bool> ResizeCutAtAsync(string image, byte[] model, long oldSize, long newSize, int n)
    {
        var plan = new CrashPlan { CrashAtWrite = n };
        bool completed = false;
        try
        {
            var r = await DiskSnapshotEngine.Operations.Resize.RunAsync(image, newSize, true, OpenOptions.ReadOnly with { FileOpener = plan.Opener });
            Assert.True(r.InPlace);
            completed = true;
        }
        catch (DiskImageException e) when (plan.Crashed && e.Kind == ErrorKind.Io) { }
        AssertResizedSound(image, model, oldSize, newSize, completed, n);
        return completed;
    }

    /// <summary>
    /// After a resize from <paramref name="oldSize"/> to <paramref name="newSize"/> killed at write <paramref name="n"/> (or
    /// <paramref name="completed"/>): the image has one of the two sizes, reads the model cut or zero-extended to it, checks clean.
    /// </summary>
    public static void AssertResizedSound(string image, byte[] model, long oldSize, long newSize, bool completed, int n)
    {
        using var chain = DiskImage.Open(image);
        Assert.True(chain.VirtualSize == oldSize || chain.VirtualSize == newSize, $"size {chain.VirtualSize} after a kill at write {n}");
        if (completed) Assert.Equal(newSize, chain.VirtualSize);
        // A disk too large to read whole (a BAT grown past its region) is read over the model and a MiB more; past
        // that no extent may hold data.
        long read = chain.VirtualSize <= 256L << 20 ? chain.VirtualSize : Math.Min(chain.VirtualSize, model.Length + (1L << 20));
        var content = new byte[read];
        chain.Read(0, content);
        var expected = new byte[read];
        Array.Copy(model, expected, Math.Min(model.Length, expected.Length));
        Assert.Equal(-1, FirstDifference(expected, content));
        if (read < chain.VirtualSize)
            Assert.DoesNotContain(chain.GetExtents(read, chain.VirtualSize - read), e => e.Kind == ExtentKind.Data);
        var report = chain.Check();
        Assert.False(report.HasErrors, $"check after a kill at write {n}: {string.Join("; ", report.Problems)}");
    }

    /// <summary>Asserts that the image reads exactly <paramref name="expected"/>.</summary>
    public static void AssertContent(byte[] expected, string path, string because)
    {
        var actual = ReadAll(path);
        long diff = FirstDifference(expected, actual);
        Assert.True(diff < 0, $"{because}: {Path.GetFileName(path)} differs from the expected content at offset {diff}");
    }
}

/// <summary>
/// A real file that stops writing at a chosen write, as if the process was killed there: the write numbered
/// <see cref="CrashPlan.CrashAtWrite"/> (counted across every file the plan opened) and every later write or flush
/// throw, and what was written before stays in the file (the page cache survives a kill -9).
/// </summary>
internal sealed class CrashPlan
{
    public int CrashAtWrite { get; init; } = -1;
    public int Writes { get; private set; }
    public bool Crashed { get; private set; }

    public Func<string, bool, IImageFile> Opener => (path, writable) => new CrashingFile(ImageFile.Open(path, writable), this);

    internal void BeforeWrite(string path)
    {
        if (Crashed) throw new DiskImageException(ErrorKind.Io, "simulated kill: the process is gone", path);
        if (Writes++ == CrashAtWrite)
        {
            Crashed = true;
            throw new DiskImageException(ErrorKind.Io, $"simulated kill at write {CrashAtWrite}", path);
        }
    }

    internal void BeforeFlush(string path)
    {
        if (Crashed) throw new DiskImageException(ErrorKind.Io, "simulated kill: the process is gone", path);
    }

    private sealed class CrashingFile(IImageFile inner, CrashPlan plan) : DelegatingImageFile(inner)
    {
        public override void Write(ReadOnlySpan<byte> buffer, long fileOffset) { plan.BeforeWrite(Path); base.Write(buffer, fileOffset); }
        public override void SetLength(long length) { plan.BeforeWrite(Path); base.SetLength(length); }
        public override void Flush() { plan.BeforeFlush(Path); base.Flush(); }
    }
}
