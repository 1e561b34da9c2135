using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse check --repair IMAGE</c>: what was fixed, what remains; exit 1 when errors remain.</summary>
internal static class CheckRepair
{
    public static int Run(CliContext context, string image, OpenOptions open, bool json)
    {
        var result = Repair.RunAsync(image, open, context.CancellationToken).GetAwaiter().GetResult();
        bool errors = result.Remaining.Any(p => p.Severity == CheckSeverity.Error);
        if (json) context.WriteJson(new RepairView(result.Image, result.Fixed, result.Remaining, errors));
        else
        {
            foreach (var p in result.Fixed) context.Out.WriteLine($"fixed: {p}");
            foreach (var p in result.Remaining) context.Out.WriteLine(p.ToString());
            context.Out.WriteLine(errors
                ? $"{result.Image}: errors found; nothing was changed (repairing them could change the content)"
                : result.Fixed.Count == 0 && result.Remaining.Count == 0 ? $"{result.Image}: no problems found, nothing to repair"
                : $"{result.Image}: {result.Fixed.Count} problem(s) fixed, {result.Remaining.Count} remaining");
        }
        return errors ? ExitCodes.ProblemsFound : ExitCodes.Ok;
    }

    /// <summary>The --json document of check --repair.</summary>
    internal sealed record RepairView(string Image, IReadOnlyList<CheckProblem> Fixed, IReadOnlyList<CheckProblem> Remaining, bool HasErrors);
}
