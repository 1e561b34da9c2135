using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// What the mutation fuzzers share: their budget and seed from the DSE_FUZZ_* variables (tests/fuzz.sh sets them for
/// long runs; a failing seed replays with DSE_FUZZ_SEED), where failing inputs are saved, and the verdict at the end.
/// </summary>
/// <param name="Seconds">How long the run may take (DSE_FUZZ_SECONDS).</param>
/// <param name="MaxCases">The most cases it runs (DSE_FUZZ_CASES).</param>
/// <param name="Seed">The generator's seed (DSE_FUZZ_SEED; the clock otherwise, printed in the summary).</param>
/// <param name="FailureDir">Where failing inputs are saved (DSE_FUZZ_FAILURES).</param>
internal sealed record FuzzSettings(int Seconds, int MaxCases, ulong Seed, string FailureDir)
{
    /// <summary>The settings, with <paramref name="seconds"/> and <paramref name="maxCases"/> where no variable says otherwise.</summary>
    public static FuzzSettings FromEnvironment(int seconds, int maxCases) => new(
        int.TryParse(Environment.GetEnvironmentVariable("DSE_FUZZ_SECONDS"), out var s) ? s : seconds,
        int.TryParse(Environment.GetEnvironmentVariable("DSE_FUZZ_CASES"), out var c) ? c : maxCases,
        ulong.TryParse(Environment.GetEnvironmentVariable("DSE_FUZZ_SEED"), out var sd) ? sd : (ulong)Environment.TickCount64,
        Environment.GetEnvironmentVariable("DSE_FUZZ_FAILURES") ?? Path.Combine(Path.GetTempPath(), "dse-fuzz-failures"));

    /// <summary>
    /// Prints <paramref name="summary"/> (and appends it with the failures to DSE_FUZZ_SUMMARY), then asserts that no
    /// case failed and that at least <paramref name="minCases"/> (or <see cref="MaxCases"/> if fewer) ran.
    /// </summary>
    public void Conclude(ITestOutputHelper output, string summary, IReadOnlyList<string> failures, int cases, int minCases)
    {
        output.WriteLine(summary);
        if (Environment.GetEnvironmentVariable("DSE_FUZZ_SUMMARY") is string summaryFile)
            File.AppendAllText(summaryFile, summary + "\n" + string.Join("\n", failures) + (failures.Count > 0 ? "\n" : ""));
        Assert.True(failures.Count == 0, summary + "\n" + string.Join("\n", failures.Take(10)) + $"\ninputs saved in {FailureDir}");
        Assert.True(cases >= Math.Min(MaxCases, minCases), $"only {cases} cases ran in {Seconds} s");
    }
}
