using System.CommandLine;
using DiskSnapshotEngine.Block;

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
                context.WriteJson(new { image = path, @sealed = now != SealReasons.None, seal = Names(now), was = Names(was) });
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

    /// <summary>After a linked clone: say so when its parent could not be sealed (a file this user cannot write).</summary>
    public static void WarnIfParentUnsealed(CliContext context, string parentPath)
    {
        using var parent = DiskImage.OpenLayer(parentPath, writable: false);
        if (parent is not ISealableLayer)
            context.Note($"{parent.Path} is not sealed: {Seals.NoMark(parent.Format)}; dse verbs will not refuse to change it");
        else if (Seals.Of(parent) == SealReasons.None)
            context.Note($"{parent.Path} could not be sealed (this user cannot write it): its file mode keeps this user from changing it, " +
                "but not root; run 'dse seal' on it as its owner so that no dse verb changes it");
    }
}
