using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>dse demo [--dir DIR]</c>: a golden image, two linked clones written independently, and proofs that the golden
/// image never changed and that each clone sees its own writes over the golden data. Exit 0 only when every proof holds.
/// </summary>
internal static class DemoCommand
{
    private const long DiskSize = 64L << 20;
    // Golden content: 4 MiB at the start and 1 MiB at 48 MiB, every 512-byte sector labelled with its offset.
    private static readonly (long Offset, int Length)[] s_goldenRuns = { (0, 4 << 20), (48L << 20, 1 << 20) };

    public static Command Build()
    {
        var dir = new Option<string>("--dir")
        {
            Description = "Folder to create for the scenario (must not exist or be empty); default demo-output/<timestamp>.",
            HelpName = "DIR",
        };
        var format = new Option<string>("--format")
        {
            Description = "Image format of the scenario.",
            DefaultValueFactory = _ => "vhdx",
        };
        format.AcceptOnlyFromAmong("vhdx", "vdi");
        var command = new Command("demo", "Run a built-in scenario: a golden image, two linked clones with their own writes, and proofs that the golden image is unchanged.")
        {
            dir, format,
        };
        VerbAction.Set(command, context => Run(context, context.Get(dir), context.Get(format)!));
        return command;
    }

    private static int Run(CliContext context, string? dirOption, string format)
    {
        // With --json the narrative is left out; the result is the folder and the proofs.
        var w = context.Json ? TextWriter.Null : context.Out;
        string dir = Path.GetFullPath(dirOption ?? Path.Combine("demo-output", DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff")));
        if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new DiskImageException(ErrorKind.AlreadyExists, "the demo folder is not empty; give another --dir", dir);
        if (File.Exists(dir))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the demo folder path is a file", dir);
        Directory.CreateDirectory(dir);
        string golden = Path.Combine(dir, $"golden.{format}");
        string cloneA = Path.Combine(dir, $"clone-a.{format}");
        string cloneB = Path.Combine(dir, $"clone-b.{format}");
        var proofs = new List<(string Claim, bool Holds)>();

        w.WriteLine($"demo folder: {dir}");
        w.WriteLine($"1. golden image {Path.GetFileName(golden)}: {SizeParser.Describe(DiskSize)} virtual, labelled data at 0-4 MiB and 48-49 MiB");
        using (var layer = DiskImage.Create(golden, new ImageCreateOptions(DiskSize)))
        using (var chain = new DiskChain(new[] { layer }))
        {
            foreach (var (offset, length) in s_goldenRuns) chain.Write(offset, GoldenBytes(offset, length));
            chain.Flush();
        }
        // Sealed now, as its first linked clone would seal it: from here on not one byte of the file changes.
        DiskImage.Seal(golden);
        w.WriteLine("   sealed (dse seal): no dse verb changes it while clones read through it");
        string goldenFileHash = FileHash(golden);
        string goldenContentHash = ContentHash(golden);
        w.WriteLine($"   sha256 of the file:    {goldenFileHash}");
        w.WriteLine($"   sha256 of the content: {goldenContentHash}");

        w.WriteLine("2. two linked clones (differencing children of the golden image)");
        var writes = new Dictionary<string, (long Offset, byte[] Data)[]>
        {
            // Clone A overwrites part of the golden data (copy-on-write of a partial block) and writes past it.
            [cloneA] = new[] { (1L << 20, Label("CLONE-A", 256 << 10)), (20L << 20, Label("CLONE-A", 1 << 20)) },
            // Clone B writes a single unaligned run straddling golden data and an empty region.
            [cloneB] = new[] { ((4L << 20) - 1000, Label("CLONE-B", 5000)) },
        };
        foreach (var (clone, cloneWrites) in writes)
        {
            LinkedClone.Create(golden, clone);
            using var chain = DiskImage.Open(clone, OpenOptions.ReadWrite);
            foreach (var (offset, data) in cloneWrites) chain.Write(offset, data);
            chain.Flush();
            w.WriteLine($"   {Path.GetFileName(clone)}: wrote {string.Join(", ", cloneWrites.Select(x => $"{x.Data.Length} bytes at {x.Offset}"))}");
        }

        w.WriteLine("3. the chains, top to base");
        foreach (var clone in writes.Keys)
        {
            using var chain = DiskImage.Open(clone);
            for (int i = 0; i < chain.Layers.Count; i++)
            {
                var l = chain.Layers[i];
                string link = l.ParentLink is { } p
                    ? $"parent {(p.CandidatePaths.Count > 0 ? p.CandidatePaths[0] : p.ParentId?.ToString() ?? "?")} ({p.VersionName} {p.ParentVersion?.ToString() ?? "none"})"
                    : "base";
                w.WriteLine($"   {new string(' ', i * 2)}{Path.GetFileName(l.Path)}: {l.Format.ToString().ToLowerInvariant()} {l.Type.ToString().ToLowerInvariant()}, {SizeParser.Describe(l.VirtualSize)}, file {SizeParser.Describe(l.File.Length)}, {link}");
            }
            proofs.Add(($"{Path.GetFileName(clone)} has the golden image as its parent",
                chain.Layers.Count == 2 && string.Equals(chain.Layers[1].Path, golden, StringComparison.Ordinal)));
        }

        w.WriteLine("4. proofs");
        proofs.Add(("golden file bytes unchanged (sha256)", FileHash(golden) == goldenFileHash));
        proofs.Add(("golden content unchanged (sha256)", ContentHash(golden) == goldenContentHash));
        foreach (var (clone, cloneWrites) in writes)
        {
            using var chain = DiskImage.Open(clone);
            string name = Path.GetFileName(clone);
            // Expected view: golden data, then this clone's writes on top (and nothing of the other clone).
            var expected = new byte[DiskSize];
            foreach (var (offset, length) in s_goldenRuns) GoldenBytes(offset, length).CopyTo(expected, offset);
            foreach (var (offset, data) in cloneWrites) data.CopyTo(expected, offset);
            var actual = new byte[DiskSize];
            chain.Read(0, actual);
            bool ownWrites = cloneWrites.All(x => actual.AsSpan((int)x.Offset, x.Data.Length).SequenceEqual(x.Data));
            proofs.Add(($"{name} reads its own writes", ownWrites));
            proofs.Add(($"{name} reads the golden data everywhere else (whole disk compared)", actual.AsSpan().SequenceEqual(expected)));
        }

        bool all = true;
        foreach (var (claim, holds) in proofs)
        {
            w.WriteLine($"   [{(holds ? "PASS" : "FAIL")}] {claim}");
            all &= holds;
        }
        w.WriteLine(all ? "demo: every proof holds" : "demo: SOME PROOFS FAILED");
        if (context.Json) context.WriteJson(new DemoView(dir, all, proofs.Select(p => new ProofView(p.Claim, p.Holds))));
        return all ? ExitCodes.Ok : ExitCodes.ProblemsFound;
    }

    private static byte[] GoldenBytes(long offset, int length) => Label("GOLDEN", length, offset);

    /// <summary>Recognisable content: each 512-byte sector starts with the tag and its virtual offset.</summary>
    private static byte[] Label(string tag, int length, long baseOffset = 0)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i += 512)
        {
            var text = Encoding.ASCII.GetBytes($"{tag} sector at {baseOffset + i,12} ".PadRight(64, '.'));
            for (int j = 0; j < 512 && i + j < length; j++) data[i + j] = text[j % text.Length];
        }
        return data;
    }

    private static string FileHash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static string ContentHash(string path)
    {
        using var chain = DiskImage.Open(path);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long at = 0; at < chain.VirtualSize; at += buffer.Length)
        {
            var part = buffer.AsSpan(0, (int)Math.Min(buffer.Length, chain.VirtualSize - at));
            chain.Read(at, part);
            sha.AppendData(part);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    // The --json document of demo.
    internal sealed record DemoView(string Dir, bool Passed, IEnumerable<ProofView> Proofs);
    internal sealed record ProofView(string Claim, bool Holds);
}
