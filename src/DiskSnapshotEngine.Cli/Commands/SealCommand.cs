using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse seal IMAGE</c> and <c>dse unseal IMAGE</c>: the mark that keeps a golden image unchanged.</summary>
internal static class SealCommand
{
    public static Command BuildSeal() => Build(seal: true);

    public static Command BuildUnseal() => Build(seal: false);

    private static Command Build(bool seal)
    {
        var image = CommonOptions.Image("A VHDX, VDI or qcow2 image (a VHD or raw image carries no seal: exit 5).");
        var json = CommonOptions.Json();
        var command = seal
            ? new Command("seal", "Seal an image as a golden image: no dse verb changes what it reads (write, merge into it, rebase, pull) until 'dse unseal'. Linked clones seal their parent by themselves.")
            : new Command("unseal", "Lift an image's seal, saying that no linked clone reads through it any more (or that changing it is meant). Its children stay linked until it is changed.");
        command.Arguments.Add(image);
        command.Options.Add(json);
        VerbAction.Set(command, context =>
        {
            string path = Path.GetFullPath(context.Get(image)!);
            var was = seal ? DiskImage.Seal(path) : DiskImage.Unseal(path);
            var now = seal ? was | SealReasons.Golden : SealReasons.None;
            if (context.Get(json))
                context.WriteJson(new SealView(path, now != SealReasons.None, Names(now), Names(was)));
            else if (seal)
                context.Out.WriteLine(was == now ? $"{path} was already sealed: {Seals.Describe(now)}" : $"sealed {path}: {Seals.Describe(now)}");
            else
                context.Out.WriteLine(was == SealReasons.None ? $"{path} was not sealed" : $"unsealed {path} (it was sealed as a {Seals.Describe(was)})");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The seal's reasons as lower-case names, for JSON ("golden", "snapshot").</summary>
    public static string[] Names(SealReasons seal) => seal == SealReasons.None ? [] : // (most images: no enum reflection at start-up)
        Enum.GetValues<SealReasons>().Where(r => r != SealReasons.None && seal.HasFlag(r)).Select(r => r.ToString().ToLowerInvariant()).ToArray();

    /// <summary>
    /// After a verb linked a child to a parent (a linked clone, create --parent, rebase, vm register's golden image):
    /// say so, in one line, when that parent carries no seal mark (VHD, raw) or this process could not write it (a
    /// read-only file system, a mode that denies this user, an immutable file) or writing the seal failed, from what sealing it found
    /// (<see cref="LinkedClone.Create"/>).
    /// </summary>
    public static void WarnIfParentUnsealed(CliContext context, ParentSeal parent)
    {
        switch (parent.Outcome)
        {
            case ParentSealOutcome.NoMark:
                context.Note($"{parent.Path} is not sealed: {Seals.NoMark(parent.Format)}; dse verbs will not refuse to change it");
                break;
            case ParentSealOutcome.LeftUnsealed:
                context.Note($"{parent.Path} was not sealed ({parent.Reason}): while that holds nothing changes it and dse verbs that would write it fail (exit 15); " +
                    "once it can be written, 'dse seal' it so that no dse verb changes it");
                break;
            case ParentSealOutcome.SoleChildStale:
                context.Note($"{parent.Path}'s seal still records another linked clone as its only one ({parent.Reason}: not updated); " +
                    "once it can be written, 'dse seal' it before merging any clone into it");
                break;
            case ParentSealOutcome.SealFailed:
                context.Note($"{parent.Path} was not sealed ({parent.Reason}); " +
                    (parent.Reason == ParentSeal.Held ? "stop the process that holds it, then " : "") + $"run: dse seal {ShellWords.Quote(parent.Path)}");
                break;
        }
    }

    /// <summary>The --json document of seal and unseal.</summary>
    internal sealed record SealView(string Image, bool Sealed, string[] Seal, string[] Was);
}
