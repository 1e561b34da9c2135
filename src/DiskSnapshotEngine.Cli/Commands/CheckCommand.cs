using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>dse check IMAGE [--json]</c>: checks every layer of the chain without writing. Exit 0 when there is no error
/// (leaks and warnings are listed but harmless: compact reclaims leaks), 1 when any error is found.
/// </summary>
internal static class CheckCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The image to check (each layer of its chain is checked; nothing is written).");
        var json = CommonOptions.Json();
        var profile = AzureProfileOption.Create("azure: say instead whether Azure would take the file as an uploaded disk, and why not (exit 1 when not).");
        var repair = new Option<bool>("--repair") { Description = "Fix in IMAGE's own layer what is safe (leaks, a stale header count or header copy, a dirty VHDX log) and say what changed; never content; errors are left alone (exit 1)." };
        var command = new Command("check", "Check an image chain's structures; exit 0 when clean or only leaks/warnings, 1 when errors are found.")
        {
            image, profile, repair, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true);

        VerbAction.Set(command, async context =>
        {
            if (context.Get(profile) is not null) return CheckAzure(context, context.Get(image)!, context.Get(json));
            if (context.Get(repair)) return CheckRepair.Run(context, context.Get(image)!, chainOptions.ToOpenOptions(context.Parse, writable: false), context.Get(json));
            using var chain = DiskImage.Open(context.Get(image)!, chainOptions.ToOpenOptions(context, writable: false));
            // Layer by layer (as DiskChain.Check), so that progress says which layer is being checked.
            var report = await ProgressDisplay.RunAsync(context, "check", progress => Task.Run(() =>
            {
                var all = new CheckReport();
                for (int i = 0; i < chain.Layers.Count; i++)
                {
                    progress?.Report(new OperationProgress(Path.GetFileName(chain.Layers[i].Path), i, chain.Layers.Count));
                    all.AddRange(chain.Layers[i].Check());
                }
                progress?.Report(new OperationProgress("done", chain.Layers.Count, chain.Layers.Count));
                return all;
            })).ConfigureAwait(false);
            int Count(CheckSeverity s) => report.Problems.Count(p => p.Severity == s);
            if (context.Get(json))
            {
                context.WriteJson(new CheckView(chain.Top.Path, chain.Layers.Select(l => l.Path).ToArray(), report.IsClean, report.HasErrors,
                    Count(CheckSeverity.Error), Count(CheckSeverity.Warning), Count(CheckSeverity.Leak), ProblemView.Of(report.Problems)));
            }
            else
            {
                foreach (var p in report.Problems) context.Out.WriteLine(p.ToString());
                string layers = chain.Layers.Count == 1 ? "1 layer" : $"{chain.Layers.Count} layers";
                if (report.IsClean)
                    context.Out.WriteLine($"{chain.Top.Path}: no problems found ({layers} checked)");
                else
                    context.Out.WriteLine($"{chain.Top.Path}: {Count(CheckSeverity.Error)} error(s), {Count(CheckSeverity.Warning)} warning(s), {Count(CheckSeverity.Leak)} leak(s) ({layers} checked)" +
                        (report.HasErrors ? "" : "; leaks and warnings do not affect the content (compact reclaims leaked space)"));
            }
            return report.HasErrors ? ExitCodes.ProblemsFound : ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The Azure verdict: exit 0 when Azure would take the file as it is, 1 with every reason when not.</summary>
    private static int CheckAzure(CliContext context, string image, bool json)
    {
        string path = Path.GetFullPath(image);
        var reasons = AzureVhdProfile.Check(path).ToList();
        // A file that passes the footer rules must also be a sound VHD.
        if (reasons.Count == 0)
        {
            using var chain = DiskImage.Open(path);
            reasons.AddRange(chain.Check().Problems.Where(p => p.Severity == CheckSeverity.Error).Select(p => p.ToString()));
        }
        if (json) context.WriteJson(new AzureView(path, AzureProfileOption.Azure, reasons.Count == 0, reasons));
        else if (reasons.Count == 0)
            context.Out.WriteLine($"{path}: Azure takes it: a fixed VHD of a whole number of MiB, the file that size plus its 512-byte footer");
        else
        {
            context.Out.WriteLine($"{path}: Azure would refuse it:");
            foreach (var r in reasons) context.Out.WriteLine($"  - {r}");
        }
        return reasons.Count == 0 ? ExitCodes.Ok : ExitCodes.ProblemsFound;
    }

    // The --json documents of check and check --profile azure (keys in this order).
    internal sealed record CheckView(string Image, string[] Layers, bool Clean, bool HasErrors, int Errors, int Warnings, int Leaks, IReadOnlyList<ProblemView> Problems);
    internal sealed record AzureView(string Image, string Profile, bool Accepted, List<string> Reasons);
}
