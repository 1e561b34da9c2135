using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse rebase IMAGE --parent NEW [--unsafe]</c>.</summary>
internal static class RebaseCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The differencing image to give a new parent.");
        var parent = new Option<string>("--parent") { Description = "The new parent.", HelpName = "NEW", Required = true };
        var unsafeOpt = new Option<bool>("--unsafe")
        {
            Description = "Copy nothing: only rewrite the link, after checking that NEW is the same image or reads the same as the old parent.",
        };
        var json = CommonOptions.Json();
        var command = new Command("rebase",
            "Give IMAGE a new parent, keeping its content (differing ranges are copied into IMAGE first). " +
            "When the old parent was moved, pass its new location: the identity is checked and only the link is rewritten.")
        {
            image, parent, unsafeOpt, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, async context =>
        {
            var open = chainOptions.ToOpenOptions(context.Parse, writable: false);
            var result = await ProgressDisplay.RunAsync(context, "rebase", p =>
                Rebase.RunAsync(context.Get(image)!, context.Get(parent)!, context.Get(unsafeOpt), open, p, context.CancellationToken)).ConfigureAwait(false);
            string path = Path.GetFullPath(context.Get(image)!);
            SealCommand.WarnIfParentUnsealed(context, result.NewParentSeal); // as clone --linked says it
            QemuBackingWarning.WarnIfQemuCannotFollow(context, path, open);
            context.Result(() => new RebaseView(path, Output.ParentLinkView.Read(path, result.NewParent), result.Mode, result.Stats.BytesWritten, result.Stats.BytesZero),
                $"{Path.GetFullPath(context.Get(image)!)} now links to {result.NewParent} ({result.Mode}; {SizeParser.Describe(result.Stats.BytesWritten + result.Stats.BytesZero)} copied)");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The --json document of rebase.</summary>
    internal sealed record RebaseView(string Image, Output.ParentLinkView? Parent, string Mode, long BytesWritten, long BytesZero);
}
