using System.CommandLine;
using DiskSnapshotEngine.Snapshots;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse rollback DISK</c>: revert to the newest snapshot the current state descends from.</summary>
internal static class RollbackCommand
{
    public static Command Build()
    {
        var disk = SnapshotCommand.Disk();
        var command = new Command("rollback", "Discard the current state and go back to the newest snapshot it descends from.") { disk };
        var chainOptions = ChainOptions.AddTo(command);
        var vm = VmFileOption.AddTo(command);
        VerbAction.Set(command, context => vm.AroundChangeAsync(context, context.Get(disk)!, chainOptions, (path, open) =>
        {
            var entry = DiskSnapshots.Rollback(path, open);
            context.Result(new SnapshotCommand.NameView(path, entry.Name), $"rolled back to '{entry.Name}'");
            return Task.CompletedTask;
        }));
        return command;
    }
}
