using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse merge IMAGE [--into ANCESTOR]</c> (commit) and <c>dse merge --pull IMAGE</c>. Rerunning finishes an interrupted merge.</summary>
internal static class MergeCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The differencing image to merge.");
        var into = new Option<string>("--into") { Description = "The ancestor receiving the data (default: the parent).", HelpName = "ANCESTOR" };
        var pull = new Option<bool>("--pull") { Description = "Instead: copy the parent's data into IMAGE and link IMAGE to its grandparent." };
        var json = CommonOptions.Json();
        var force = new Option<bool>("--force")
        {
            Description = "Merge into (or merge away) a sealed image anyway: your word that no other linked clone reads through it.",
        };
        var command = new Command("merge",
            "Commit IMAGE (and the layers between) into an ancestor, relink IMAGE's children and remove the merged files; or --pull. " +
            "Crash-safe: run the same command again to finish an interrupted merge.")
        {
            image, into, pull, json, force,
        };
        var chainOptions = ChainOptions.AddTo(command);
        command.Validators.Add(r =>
        {
            if (r.GetResult(pull) is { Implicit: false } && r.GetResult(into) is not null) r.AddError("--into cannot be combined with --pull");
        });

        VerbAction.Set(command, context => Run(context, context.Get(image)!, context.Get(into), context.Get(pull), context.Get(force),
            writable => chainOptions.ToOpenOptions(context.Parse, writable)));
        return command;
    }

    /// <summary><c>dse merge IMAGE</c> with no option but --into, --force and the common flags, without the parser.</summary>
    public static DirectRun? Direct(string[] args) =>
        DirectArgs.Read(args, 1, ["--force"], ["--into"]) is { } a
            ? new DirectRun(a, context => Run(context, a.Arguments[0], a.Value("--into"), isPull: false, a.Flag("--force"), DirectRun.NoChainOptions))
            : null;

    private static async Task<int> Run(CliContext context, string path, string? into, bool isPull, bool force, Func<bool, OpenOptions> chainOpen)
    {
        // A snapshot's layer changes only through snapshot delete, which keeps the catalog right.
        var open = chainOpen(false);
        if (force) open = open with { Sealed = Block.SealPolicy.Override };
        var options = new MergeOptions { Open = open, Guard = SnapshotMergeGuard.Instance };
        var result = await ProgressDisplay.RunAsync(context, isPull ? "pull" : "merge", p => isPull
            ? Merge.PullAsync(path, options, p, context.CancellationToken)
            : Merge.CommitAsync(path, into, options, p, context.CancellationToken)).ConfigureAwait(false);
        if (context.Json)
            context.WriteJson(new MergeView(Path.GetFullPath(path), result.Target, result.Resumed, result.Stats.BytesWritten, result.Stats.BytesZero, result.Relinked, result.Removed, result.Unsealed,
                result.RemovedLinks, result.KeptLinks));
        else
        {
            if (result.Resumed) context.Note("an interrupted run was found and finished");
            context.Out.WriteLine(isPull
                ? $"pulled {SizeParser.Describe(result.Stats.BytesWritten + result.Stats.BytesZero)} into {Path.GetFullPath(path)}; its parent is now {result.Target}"
                : $"merged into {result.Target}: {SizeParser.Describe(result.Stats.BytesWritten)} of data, {SizeParser.Describe(result.Stats.BytesZero)} of zeros");
            foreach (var c in result.Relinked) context.Out.WriteLine($"  relinked {c}");
            foreach (var r in result.Removed) context.Out.WriteLine($"  removed {r}");
            WriteRemovedLinks(context, result.RemovedLinks);
            if (result.Unsealed is { } u) context.Out.WriteLine($"  unsealed {u}: its only linked clone was merged into it");
        }
        NoteKeptLinks(context, result.KeptLinks);
        return ExitCodes.Ok;
    }

    /// <summary>The text lines for links to merged layers that were removed (merge and snapshot delete).</summary>
    internal static void WriteRemovedLinks(CliContext context, IReadOnlyList<string> removedLinks)
    {
        foreach (var l in removedLinks) context.Out.WriteLine($"  removed link {l}");
    }

    /// <summary>A note per link to a merged layer that was left (merge and snapshot delete).</summary>
    internal static void NoteKeptLinks(CliContext context, IReadOnlyList<KeptLink> keptLinks)
    {
        // A link left behind is said on stderr also with --json: it may lead nowhere now.
        foreach (var k in keptLinks) context.Note($"left the link {k.Link} to a merged layer: {k.Reason}");
    }

    /// <summary>The --json document of merge.</summary>
    internal sealed record MergeView(string Image, string Target, bool Resumed, long BytesWritten, long BytesZero, IReadOnlyList<string> Relinked,
        IReadOnlyList<string> Removed, string? Unsealed, IReadOnlyList<string> RemovedLinks, IReadOnlyList<KeptLink> KeptLinks);
}
