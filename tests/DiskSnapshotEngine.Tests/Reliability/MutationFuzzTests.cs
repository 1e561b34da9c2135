using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// Mutation fuzzer: valid VHDX, VDI, qcow2 and VHD images (ours, qemu's, and the real ones in ../shared/fixtures) get FsCheck-generated
/// edits in their headers, region tables, metadata, BAT, block map, sector bitmaps, log, L1/L2/refcount and snapshot tables,
/// VHD footers and parent locators, then are opened, read, checked and
/// exported. Only typed errors (DiskImageException) are acceptable; no hang (per-case timeout), no allocation beyond a
/// fixed bound, and a failed open never changes the file. A short run is part of the suite; `tests/fuzz.sh --minutes N`
/// runs it longer (DSE_FUZZ_SECONDS) and saves each failing input (DSE_FUZZ_FAILURES).
/// </summary>
public class MutationFuzzTests
{
    private const long AllocationBound = 512L << 20;
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);
    private readonly ITestOutputHelper _output;

    public MutationFuzzTests(ITestOutputHelper output) => _output = output;

    /// <summary>One edit: where (region index, position in it) and what.</summary>
    public sealed record Edit(int Region, double Position, int Kind, ulong Value);

    /// <summary>A valid image kept sparse on disk, with the files it needs beside it (its parent) and its structure map.</summary>
    private sealed record Seed(string Name, string Pristine, IReadOnlyList<string> Companions, IReadOnlyList<StructureMap.Region> Regions, long Length);

    [Fact]
    public async Task Mutated_images_give_only_typed_errors()
    {
        var fuzz = FuzzSettings.FromEnvironment(seconds: 45, maxCases: 3000);
        var (seconds, maxCases, seed, failureDir) = fuzz;

        using var work = new TempDirectory("fuzz");
        var setup = System.Diagnostics.Stopwatch.StartNew();
        var seeds = BuildSeeds(work);
        _output.WriteLine($"seeds built in {setup.Elapsed.TotalSeconds:F1} s");
        Assert.True(seeds.Count > 0, "no seed image could be built");
        _output.WriteLine($"seed {seed}; seeds: {string.Join(", ", seeds.Select(x => x.Name))}");

        var edits = Gen.Choose(1, 6).SelectMany(n => EditGen.ListOf(n)).Select(l => l.ToArray());
        ulong batchSeed = seed;
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        int cases = 0;
        var failures = new List<string>();
        while (cases < maxCases && DateTime.UtcNow < deadline)
        {
            // 64 cases per batch from the seeded generator; the batch index keeps every case reproducible.
            var batch = edits.Sample(20, new Rnd(batchSeed++), 64);
            foreach (var caseEdits in batch)
            {
                if (cases >= maxCases || DateTime.UtcNow >= deadline) break;
                var sd2 = seeds[cases % seeds.Count];
                string? failure = await RunCase(work, sd2, caseEdits, cases);
                if (failure is not null)
                {
                    failures.Add(failure);
                    Save(failureDir, sd2, caseEdits, cases, failure);
                }
                cases++;
            }
        }

        string summary = $"{cases} cases in {(DateTime.UtcNow - deadline.AddSeconds(-seconds)).TotalSeconds:F0} s, {failures.Count} failures (seed {seed})";
        fuzz.Conclude(_output, summary, failures, cases, minCases: 300);
    }

    private static Gen<Edit> EditGen =>
        from region in Gen.Choose(0, 1000)
        from position in Gen.Choose(0, 1 << 20).Select(x => x / (double)(1 << 20))
        from kind in Gen.Frequency((3, Gen.Constant(0)), (3, Gen.Constant(1)), (4, Gen.Constant(2)), (3, Gen.Constant(3)), (1, Gen.Constant(4)))
        from value in Gen.Elements<ulong>(0UL, 1UL, 0x7FUL, 0xFFUL, 0x7FFFFFFFUL, 0x80000000UL, 0xFFFFFFFEUL, 0xFFFFFFFFUL,
            0x100000UL, 1UL << 40, ulong.MaxValue, long.MaxValue, 0xFFFFFFFF00000006UL)
            .Or(Gen.Choose(0, int.MaxValue).Select(x => (ulong)x * 4099))
        select new Edit(region, position, kind, value);

    /// <summary>Applies the edits to a file in place; returns the original bytes so the edits can be undone.</summary>
    private static List<(long At, byte[] Original)> Apply(Seed seed, Edit[] edits, string path)
    {
        var undo = new List<(long, byte[])>();
        using var f = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        foreach (var e in edits)
        {
            var r = seed.Regions[e.Region % seed.Regions.Count];
            long at = r.Offset + (long)(e.Position * Math.Max(0, r.Length - 1));
            int width = e.Kind switch { 0 or 1 => 1, 2 => 4, 3 => 8, _ => 16 };
            at &= ~(long)(width is 4 or 8 ? width - 1 : 0);
            if (at < 0 || at + width > seed.Length) continue;
            var c = new byte[width];
            f.Position = at;
            f.ReadExactly(c);
            undo.Add((at, (byte[])c.Clone()));
            switch (e.Kind)
            {
                case 0: c[0] ^= (byte)(1 << (int)(e.Value % 8)); break;
                case 1: c[0] = (byte)e.Value; break;
                case 2: BinaryPrimitives.WriteUInt32LittleEndian(c, (uint)e.Value); break;
                case 3: BinaryPrimitives.WriteUInt64LittleEndian(c, e.Value); break;
                default: Array.Clear(c); break;
            }
            f.Position = at;
            f.Write(c);
        }
        return undo;
    }

    private static void Undo(string path, List<(long At, byte[] Original)> undo)
    {
        using var f = File.Open(path, FileMode.Open, FileAccess.ReadWrite);
        // Reverse order: overlapping edits restore the oldest bytes last.
        for (int i = undo.Count - 1; i >= 0; i--)
        {
            f.Position = undo[i].At;
            f.Write(undo[i].Original);
        }
    }

    // The read-only pass runs on the seed's own working file, edited and then restored (no copy: some real fixtures
    // hold 100 MB of data). The read-write pass needs a copy: always for small seeds, every 8th case for large ones.
    private static async Task<string?> RunCase(TempDirectory work, Seed seed, Edit[] edits, int index)
    {
        string path = seed.Pristine;
        var undo = Apply(seed, edits, path);
        try
        {
            File.SetLastWriteTimeUtc(path, PlantedTime); // any write moves mtime off this date, however fast it follows
            string? hash = seed.Length <= SmallFile ? ContentHash.OfFile(path) : null;
            string? copy = null;
            if (seed.Length <= SmallFile || index % 8 == 0)
            {
                copy = Path.Combine(Path.GetDirectoryName(path)!, "w-" + seed.Name);
                SparseCopy(path, copy);
                File.SetLastWriteTimeUtc(copy, PlantedTime);
            }

            var task = Task.Run(() => Exercise(path, copy));
            var finished = await Task.WhenAny(task, Task.Delay(CaseTimeout));
            if (finished != task) return $"case {index} ({seed.Name}): hung for more than {CaseTimeout.TotalSeconds} s";
            var (error, writableOpenFailed) = await task;
            if (error is not null) return $"case {index}: {error}";
            if (Changed(path, seed.Length, hash)) return $"case {index} ({seed.Name}): a read-only open changed the file";
            if (copy is not null && writableOpenFailed && Changed(copy, seed.Length, hash))
                return $"case {index} ({seed.Name}): a failed read-write open changed the file";
            if (copy is not null) File.Delete(copy);
            return null;
        }
        finally
        {
            Undo(path, undo);
        }
    }

    private static readonly DateTime PlantedTime = new(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    // Small seeds are also hashed and always get a read-write pass; mtime and length catch writes to large ones.
    private const long SmallFile = 4 << 20;

    private static bool Changed(string path, long length, string? hash) =>
        new FileInfo(path).Length != length || File.GetLastWriteTimeUtc(path) != PlantedTime
        || (hash is not null && ContentHash.OfFile(path) != hash);

    // Runs on its own thread so that the allocation count is the engine's alone for this case.
    private static (string? Error, bool WritableOpenFailed) Exercise(string path, string? writableCopy)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        bool writeOpenFailed = false;
        try
        {
            try
            {
                using var chain = DiskImage.Open(path);
                ReadAround(chain);
                chain.Check();
            }
            catch (DiskImageException) { }

            if (writableCopy is not null)
            {
                bool opened = false;
                try
                {
                    using var chain = DiskImage.Open(writableCopy, OpenOptions.ReadWrite);
                    opened = true;
                    var data = new byte[4096];
                    data.AsSpan().Fill(0x5A);
                    chain.Write(0, data.AsSpan(0, (int)Math.Min(4096, chain.VirtualSize)));
                    chain.Flush();
                }
                catch (DiskImageException) { writeOpenFailed = !opened; }
            }
        }
        catch (Exception e)
        {
            return ($"{Path.GetFileName(path)}: untyped {e.GetType().Name}: {e.Message.Split('\n')[0]} at {e.StackTrace?.Split('\n').FirstOrDefault()?.Trim()}", writeOpenFailed);
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        return (allocated > AllocationBound ? $"{Path.GetFileName(path)}: allocated {allocated >> 20} MiB (bound {AllocationBound >> 20} MiB)" : null, writeOpenFailed);
    }

    private static void ReadAround(DiskChain chain)
    {
        var buffer = new byte[64 << 10];
        long size = chain.VirtualSize;
        int n = (int)Math.Min(buffer.Length, size);
        chain.Read(0, buffer.AsSpan(0, n));
        chain.Read(size - n, buffer.AsSpan(0, n));
        chain.Read(size / 2 / 512 * 512, buffer.AsSpan(0, (int)Math.Min(n, size - size / 2 / 512 * 512)));
        // An export to nowhere, bounded in extents and bytes so a hostile size cannot make a case endless.
        long dataRead = 0;
        int extents = 0;
        foreach (var e in chain.GetExtents(0, size))
        {
            if (++extents > 20000 || dataRead > (32L << 20)) break;
            if (e.Kind != ExtentKind.Data) continue;
            int len = (int)Math.Min(e.Length, buffer.Length);
            chain.Read(e.Offset, buffer.AsSpan(0, len));
            dataRead += len;
        }
    }

    private static void Save(string dir, Seed seed, Edit[] edits, int index, string failure)
    {
        Directory.CreateDirectory(dir);
        string stem = Path.Combine(dir, $"{DateTime.UtcNow:yyyyMMddHHmmss}-{index}-{seed.Name}");
        SparseCopy(seed.Pristine, stem);
        Apply(seed, edits, stem); // the seed's working file is restored by RunCase; the saved copy keeps the edits
        File.WriteAllText(stem + ".txt", failure + "\n" + string.Join("\n", edits.Select(e => e.ToString())));
    }

    // Our own images of every kind (skipped when a driver cannot create them) plus the real fixtures.
    private static List<Seed> BuildSeeds(TempDirectory work)
    {
        var seeds = new List<Seed>();
        string dir = Path.Combine(work.Path, "seeds");
        Directory.CreateDirectory(dir);
        foreach (var ext in new[] { ".vhdx", ".vdi", ".qcow2", ".vhd" })
        {
            foreach (var type in new[] { ImageType.Dynamic, ImageType.Fixed })
            {
                string p = Path.Combine(dir, $"{type.ToString().ToLowerInvariant()}{ext}");
                if (TryMake(() =>
                {
                    // A fixed VHD has no blocks, so it refuses a block size; every other seed uses 1 MiB blocks.
                    int? blockSize = type == ImageType.Fixed && ext == ".vhd" ? null : 1 << 20;
                    using var layer = DiskImage.Create(p, new ImageCreateOptions(8L << 20, type, blockSize));
                    using var chain = new DiskChain(new[] { layer });
                    var data = RandomData.Bytes(300000, 7);
                    chain.Write(1 << 20, data);
                    chain.WriteZeroes(4L << 20, 1 << 20);
                }))
                    seeds.Add(Make(p));
            }
            string parentPath = Path.Combine(dir, "dynamic" + ext), childPath = Path.Combine(dir, "child" + ext);
            if (File.Exists(parentPath) && TryMake(() =>
            {
                DiskImage.CreateDifferencing(childPath, parentPath).Dispose();
                using var chain = DiskImage.Open(childPath, OpenOptions.ReadWrite);
                chain.Write(1000, new byte[] { 1, 2, 3, 4, 5 });
                chain.Write(3 << 20, new byte[70000]);
            }))
                seeds.Add(Make(childPath, parentPath));
        }
        if (Infrastructure.ExternalTool.Has("qemu-img") && File.Exists(Path.Combine(dir, "dynamic.qcow2")))
        {
            // qemu's own variants: compressed (zlib, zstd), extended L2 entries, 1-bit refcounts, an internal snapshot.
            string source = Path.Combine(dir, "dynamic.qcow2");
            foreach (var (name, options, compress) in new[] { ("zlib", "cluster_size=4k", true), ("zstd", "compression_type=zstd", true),
                ("extl2", "extended_l2=on", false), ("rc1", "refcount_bits=1,cluster_size=4k", false) })
            {
                string q = Path.Combine(dir, $"qemu-{name}.qcow2");
                var args = new List<string> { "convert", "-O", "qcow2", "-o", options };
                if (compress) args.Insert(1, "-c");
                Infrastructure.ExternalTool.RunChecked("qemu-img", args.Concat(new[] { source, q }).ToArray());
                seeds.Add(Make(q));
            }
            string snap = Path.Combine(dir, "qemu-snapshot.qcow2");
            File.Copy(source, snap);
            Infrastructure.ExternalTool.RunChecked("qemu-img", "snapshot", "-c", "s1", snap);
            seeds.Add(Make(snap));
        }
        // VHDs as qemu writes them (its own BAT layout, a whole bitmap per block, a CHS-sized disk without force_size).
        if (ExternalTool.Has("qemu-img"))
        {
            string raw = Path.Combine(dir, "qemu-source.raw");
            using (var f = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
            {
                f.SetLength(6L << 20);
                f.Position = (1L << 20) + 300;
                f.Write(new byte[70000].Select((_, i) => (byte)(i * 7)).ToArray());
            }
            foreach (var (name, options) in new[] { ("qemu-dynamic.vhd", "subformat=dynamic"), ("qemu-fixed.vhd", "subformat=fixed,force_size=on") })
            {
                string p = Path.Combine(dir, name);
                ExternalTool.RunChecked("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", options, raw, p);
                seeds.Add(Make(p));
            }
        }
        if (SharedFixtures.FixturesDirectory is not null && Directory.Exists(SharedFixtures.FixturesDirectory))
        {
            string fx = Path.Combine(work.Path, "fixtures");
            Directory.CreateDirectory(fx);
            foreach (var f in new[] { "iotest-dynamic-1G.vhdx.bz2", "test-disk2vhd.vhdx.bz2", "iotest-dirtylog-10G-4M.vhdx.bz2", "dynamic.vhdx.gz", "fixed.vhdx.gz", "basic.vdi.gz" })
                seeds.Add(Make(Sparsify(SharedFixtures.Extract(f, fx))));
            var parent = Sparsify(SharedFixtures.Extract("virtualbox-parent.vdi.gz", fx));
            var child = Sparsify(SharedFixtures.Extract("virtualbox-diff-child.vdi.gz", fx));
            seeds.Add(Make(child, parent));
        }
        return seeds;
    }

    // Each seed gets a folder of its own holding its working file and the files it links to (a parent).
    private static Seed Make(string path, params string[] companions)
    {
        string dir = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(path)!)!, "seed-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        string working = Path.Combine(dir, Path.GetFileName(path));
        SparseCopy(path, working);
        foreach (var c in companions) SparseCopy(c, Path.Combine(dir, Path.GetFileName(c)));
        return new(Path.GetFileName(path), working, companions, StructureMap.Of(File.ReadAllBytes(path)), new FileInfo(path).Length);
    }

    private static bool TryMake(Action make)
    {
        try { make(); return true; }
        catch (DiskImageException e) when (e.Kind == ErrorKind.Unsupported) { return false; }
    }

    /// <summary>Rewrites a file with holes where it holds 64 KiB runs of zeros (decompressed fixtures are dense).</summary>
    private static string Sparsify(string path)
    {
        string sparse = path + ".sparse";
        CopyNonZero(path, sparse);
        File.Move(sparse, path, overwrite: true);
        return path;
    }

    /// <summary>Copies a file writing only its non-zero 64 KiB chunks, so sparse seeds stay cheap to copy per case.</summary>
    private static void SparseCopy(string source, string destination) => CopyNonZero(source, destination);

    private static void CopyNonZero(string source, string destination)
    {
        using var input = File.OpenRead(source);
        using var output = new FileStream(destination, FileMode.Create, FileAccess.Write);
        var buffer = new byte[64 << 10];
        long offset = 0;
        int n;
        foreach (var (start, length) in DataRanges(input))
        {
            offset = start;
            input.Position = start;
            long remaining = length;
            while (remaining > 0 && (n = input.Read(buffer, 0, (int)Math.Min(buffer.Length, remaining))) > 0)
            {
                if (buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) >= 0)
                {
                    output.Position = offset;
                    output.Write(buffer, 0, n);
                }
                offset += n;
                remaining -= n;
            }
        }
        output.SetLength(input.Length);
    }

    // Data ranges of a file (SEEK_DATA/SEEK_HOLE through the engine's probe); the whole file where that is unavailable.
    private static IEnumerable<(long Start, long Length)> DataRanges(FileStream file)
    {
        using var image = DiskSnapshotEngine.IO.ImageFile.Open(file.Name, writable: false);
        long pos = 0, length = image.Length;
        while (pos < length && DiskSnapshotEngine.IO.SparseProbe.TryNextData(image, pos, out long data) && data < length)
        {
            long hole = Math.Min(length, DiskSnapshotEngine.IO.SparseProbe.NextHole(image, data));
            if (hole <= data) hole = length;
            yield return (data, hole - data);
            pos = hole;
        }
    }
}
