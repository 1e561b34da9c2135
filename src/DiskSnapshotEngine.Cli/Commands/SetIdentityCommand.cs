using System.CommandLine;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse set-identity IMAGE --new</c>: a new disk id, so a copy can live beside its original.</summary>
internal static class SetIdentityCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("A VHDX, VDI or VHD image (for example a copy made with cp).");
        var fresh = new Option<bool>("--new") { Description = "Give the image a new random disk id (required: the only mode)." };
        var json = CommonOptions.Json();
        var command = new Command("set-identity",
            "Give an image a new disk id in place (content and parent link unchanged), so that a copy made with cp can be registered beside its original. " +
            "Refused on an image other images read through.")
        {
            image, fresh, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        command.Validators.Add(r =>
        {
            if (r.GetResult(fresh) is null or { Implicit: true }) r.AddError("set-identity needs --new (a fresh random disk id)");
        });
        VerbAction.Set(command, context =>
        {
            var result = SetIdentity.NewId(context.Get(image)!, chainOptions.ToOpenOptions(context.Parse, writable: false));
            if (context.Get(json)) context.WriteJson(result);
            else context.Out.WriteLine($"{result.Image}: disk id {result.OldId:B} -> {result.NewId:B}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
