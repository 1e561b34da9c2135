using System.IO.Compression;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// The real images in ../shared/fixtures beside the checkout (never copied into the repository).
/// Each is decompressed into a temporary folder by the test that uses it.
/// </summary>
public static class SharedFixtures
{
    /// <summary>The shared/ folder, or null when it is not beside the checkout.</summary>
    public static string? SharedDirectory { get; } = Locate();

    /// <summary>The fixtures folder, or null.</summary>
    public static string? FixturesDirectory => SharedDirectory is null ? null : Path.Combine(SharedDirectory, "fixtures");

    private static string? Locate()
    {
        var env = Environment.GetEnvironmentVariable("DSE_SHARED_DIR");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return Path.GetFullPath(env);
        if (RepositoryFixtures.RepositoryRoot is not { } root) return null;
        var shared = Path.Combine(root, "..", "shared");
        return Directory.Exists(shared) ? Path.GetFullPath(shared) : null;
    }

    /// <summary>Decompresses a fixture (.gz or .bz2) into <paramref name="targetDir"/> and returns the image path.</summary>
    public static string Extract(string name, string targetDir) =>
        Decompress(Path.Combine(FixturesDirectory ?? throw new InvalidOperationException("no ../shared/fixtures"), name), targetDir);

    /// <summary>Decompresses any .gz or .bz2 image (or copies another file) into <paramref name="targetDir"/>.</summary>
    public static string Decompress(string src, string targetDir)
    {
        string name = Path.GetFileName(src);
        string outName = name.EndsWith(".gz") ? name[..^3] : name.EndsWith(".bz2") ? name[..^4] : name;
        string dest = Path.Combine(targetDir, outName);
        if (name.EndsWith(".gz"))
        {
            using var input = new GZipStream(File.OpenRead(src), CompressionMode.Decompress);
            using var output = File.Create(dest);
            input.CopyTo(output);
        }
        else if (name.EndsWith(".bz2"))
        {
            // No bzip2 in the framework; the bzip2 tool is part of every Debian base system.
            var psi = new System.Diagnostics.ProcessStartInfo("bzip2") { RedirectStandardOutput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-dc");
            psi.ArgumentList.Add(src);
            using var p = System.Diagnostics.Process.Start(psi)!;
            using (var output = File.Create(dest)) p.StandardOutput.BaseStream.CopyTo(output);
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"bzip2 -dc {src} failed");
        }
        else
        {
            File.Copy(src, dest);
        }
        return dest;
    }
}

/// <summary>A fact skipped, with the reason, when ../shared/fixtures is not beside the checkout.</summary>
public sealed class SharedFixtureFactAttribute : FactAttribute
{
    public SharedFixtureFactAttribute()
    {
        if (SharedFixtures.FixturesDirectory is null || !Directory.Exists(SharedFixtures.FixturesDirectory))
            Skip = "../shared/fixtures is not beside the checkout (set DSE_SHARED_DIR to point at shared/)";
    }
}
