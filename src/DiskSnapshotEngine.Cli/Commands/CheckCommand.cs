using System.CommandLine;
using DiskSnapshotEngine.Block;

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
        var command = new Command("check", "Check an image chain's structures; exit 0 when clean or only leaks/warnings, 1 when errors are found.")
        {
            image, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true);

        VerbAction.Set(command, context =>
        {
            using var chain = DiskImage.Open(context.Get(image)!, chainOptions.ToOpenOptions(context, writable: false));
            var report = chain.Check();
            int Count(CheckSeverity s) => report.Problems.Count(p => p.Severity == s);
            if (context.Get(json))
            {
                context.WriteJson(new
                {
                    image = chain.Top.Path,
                    layers = chain.Layers.Select(l => l.Path).ToArray(),
                    clean = report.IsClean,
                    hasErrors = report.HasErrors,
                    errors = Count(CheckSeverity.Error),
                    warnings = Count(CheckSeverity.Warning),
                    leaks = Count(CheckSeverity.Leak),
                    problems = report.Problems,
                });
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
}
