using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Snapshots;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse snapshot create|list|revert|delete|repair DISK</c>.</summary>
internal static class SnapshotCommand
{
    public static Command Build()
    {
        var command = new Command("snapshot",
            "Snapshots of a disk: the disk's path always names the current state; snapshots are frozen layers beside it, listed in DISK.snapshots.json.");
        command.Subcommands.Add(BuildCreate());
        command.Subcommands.Add(BuildList());
        command.Subcommands.Add(BuildRevert());
        command.Subcommands.Add(BuildDelete());
        command.Subcommands.Add(BuildRepair());
        return command;
    }

    internal static Argument<string> Disk() => new("DISK") { Description = "The disk (the path a VM uses; it stays the same)." };

    private static Option<string> Name(string description) => new("--name") { Description = description, Required = true };

    private static Command BuildCreate()
    {
        var disk = Disk();
        var name = Name("Name of the new snapshot (unique for the disk).");
        var description = new Option<string>("--description") { Description = "Free text stored with the snapshot." };
        var json = CommonOptions.Json();
        var command = new Command("create", "Take a snapshot of the current state (constant time).") { disk, name, description, json };
        var chainOptions = ChainOptions.AddTo(command);
        var vm = VmFileOption.AddTo(command);
        VerbAction.Set(command, context => vm.AroundChangeAsync(context, context.Get(disk)!, chainOptions, (path, open) =>
        {
            var entry = DiskSnapshots.Create(path, context.Get(name)!, context.Get(description), open);
            context.Result(new CreatedView(path, View(path, entry)), $"snapshot '{entry.Name}' created ({entry.File})");
            return Task.CompletedTask;
        }));
        return command;
    }

    // A snapshot as --json shows it: its layer's full path (the catalog records the name beside the disk), as list gives it.
    private static SnapshotView View(string disk, SnapshotEntry e) =>
        new(e.Id, e.Name, e.Description, e.Created, e.Parent, DiskSnapshots.PathOf(disk, e));

    private static Command BuildList()
    {
        var disk = Disk();
        var json = CommonOptions.Json();
        var command = new Command("list", "Show the snapshot tree with times and sizes; * marks the snapshot the current state was started from.") { disk, json };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            string path = Path.GetFullPath(context.Get(disk)!);
            var list = DiskSnapshots.List(path, chainOptions.ToOpenOptions(context.Parse, false));
            long currentSize = File.Exists(path) ? new FileInfo(path).Length : -1;
            if (context.Get(json))
            {
                context.WriteJson(new ListView(path, currentSize < 0 ? null : currentSize,
                    list.Select(s => new ListEntryView(s.Entry.Id, s.Entry.Name, s.Entry.Description, s.Entry.Created, s.Entry.Parent, s.Path, s.FileSize, s.IsCurrent))));
                return ExitCodes.Ok;
            }
            if (list.Count == 0) context.Out.WriteLine($"{path}: no snapshots");
            foreach (var s in list)
            {
                string indent = new(' ', 2 * s.Depth);
                context.Out.WriteLine($"{indent}{(s.IsCurrent ? "*" : "-")} {s.Entry.Name}  {s.Entry.Created.ToLocalTime():yyyy-MM-dd HH:mm:ss}  {SizeParser.Describe(Math.Max(0, s.FileSize))}" +
                    (s.Entry.Description is { } d ? $"  {d}" : ""));
                if (s.IsCurrent) context.Out.WriteLine($"{indent}    > current state ({SizeParser.Describe(Math.Max(0, currentSize))})");
            }
            if (list.Count > 0 && !list.Any(s => s.IsCurrent)) context.Out.WriteLine($"> current state ({SizeParser.Describe(Math.Max(0, currentSize))}), on no snapshot");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command BuildRevert()
    {
        var disk = Disk();
        var name = Name("The snapshot to go back to.");
        var command = new Command("revert", "Discard the current state and start a new empty one on a snapshot (all snapshots are kept).") { disk, name };
        var chainOptions = ChainOptions.AddTo(command);
        var vm = VmFileOption.AddTo(command);
        VerbAction.Set(command, context => vm.AroundChangeAsync(context, context.Get(disk)!, chainOptions, (path, open) =>
        {
            DiskSnapshots.Revert(path, context.Get(name)!, open);
            context.Result(new NameView(path, context.Get(name)), $"reverted to '{context.Get(name)}'");
            return Task.CompletedTask;
        }));
        return command;
    }

    private static Command BuildDelete()
    {
        var disk = Disk();
        var name = Name("The snapshot to delete (its data is merged so everything else reads the same).");
        var command = new Command("delete", "Delete a snapshot: the name goes and its layer is merged with its neighbours; rerun to finish an interrupted delete.") { disk, name };
        var chainOptions = ChainOptions.AddTo(command);
        var vm = VmFileOption.AddTo(command);
        VerbAction.Set(command, context => vm.AroundChangeAsync(context, context.Get(disk)!, chainOptions, async (path, open) =>
        {
            var links = await ProgressDisplay.RunAsync(context, "delete", p =>
                DiskSnapshots.DeleteAsync(path, context.Get(name)!, open, p, context.CancellationToken)).ConfigureAwait(false);
            context.Result(new DeletedView(path, context.Get(name), Deleted: true, links.RemovedLinks, links.KeptLinks), $"snapshot '{context.Get(name)}' deleted");
            if (!context.Json) MergeCommand.WriteRemovedLinks(context, links.RemovedLinks);
            MergeCommand.NoteKeptLinks(context, links.KeptLinks);
        }));
        return command;
    }

    private static Command BuildRepair()
    {
        var disk = Disk();
        var json = CommonOptions.Json();
        var command = new Command("repair", "Rebuild the catalog from the images alone and verify that every image links its parent; exit 1 when problems remain.") { disk, json };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            var result = DiskSnapshots.Repair(context.Get(disk)!, chainOptions.ToOpenOptions(context.Parse, false));
            if (context.Json)
            {
                string path = Path.GetFullPath(context.Get(disk)!);
                context.WriteJson(new RepairView(path, result.Catalog.Snapshots.Select(e => View(path, e)), ProblemView.Of(result.Problems)));
            }
            else
            {
                context.Out.WriteLine($"catalog rebuilt: {result.Catalog.Snapshots.Count} snapshot(s)");
                foreach (var p in result.Problems) context.Out.WriteLine(p.ToString());
            }
            // Warnings (a lost catalog, a dropped interrupted step) are repaired; errors (an image that does not open) are not.
            return result.HasErrors ? ExitCodes.ProblemsFound : ExitCodes.Ok;
        });
        return command;
    }

    // The --json documents of the snapshot verbs (keys in this order).
    internal sealed record SnapshotView(Guid Id, string Name, string? Description, DateTimeOffset Created, Guid? Parent, string File);
    internal sealed record CreatedView(string Image, SnapshotView Snapshot);
    internal sealed record ListEntryView(Guid Id, string Name, string? Description, DateTimeOffset Created, Guid? Parent, string File, long FileSize, bool IsCurrent);
    internal sealed record ListView(string Image, long? CurrentStateSize, IEnumerable<ListEntryView> Snapshots);
    internal sealed record NameView(string Image, string? Snapshot);
    internal sealed record DeletedView(string Image, string? Snapshot, bool Deleted, IReadOnlyList<string> RemovedLinks, IReadOnlyList<Operations.KeptLink> KeptLinks);
    internal sealed record RepairView(string Image, IEnumerable<SnapshotView> Snapshots, IReadOnlyList<ProblemView> Problems);
}
