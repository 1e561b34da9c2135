using DiskSnapshotEngine.Tests.Cli;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// Golden images made by dse on a loop-mounted file system that is then remounted read-only: <c>golden.EXT</c> for each
/// format with the input's bytes at 1 MiB, and <c>sealed.EXT</c>, sealed by its first linked clone <c>first.EXT</c>,
/// which its seal records as its only one (a second clone cannot update that record).
/// </summary>
internal static class ReadOnlyGoldens
{
    /// <summary>Makes them, remounts read-only, and returns every file's hash as the read-only mount holds it.</summary>
    public static async Task<Dictionary<string, string>> MakeAsync(LoopFileSystem fs, string input, string sealedExt, params string[] formats)
    {
        foreach (var ext in formats)
        {
            await VerbScenarios.Ok("create", fs.File($"golden.{ext}"), "--size", "16M");
            await VerbScenarios.Ok("write", fs.File($"golden.{ext}"), "--offset", "1M", "--input", input);
        }
        await VerbScenarios.Ok("create", fs.File($"sealed.{sealedExt}"), "--size", "16M");
        // Private (0600), so that its first clone is recorded as its only one.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(fs.File($"sealed.{sealedExt}"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await VerbScenarios.Ok("clone", "--linked", fs.File($"sealed.{sealedExt}"), fs.File($"first.{sealedExt}"));
        fs.Remount("ro");
        return Directory.GetFiles(fs.Path).ToDictionary(f => f, ContentHash.OfFile);
    }

    /// <summary>Every file hashed by <see cref="MakeAsync"/> still has its bytes.</summary>
    public static void AssertUnchanged(Dictionary<string, string> before)
    {
        foreach (var (file, hash) in before) Assert.Equal($"{file} {hash}", $"{file} {ContentHash.OfFile(file)}");
    }
}
