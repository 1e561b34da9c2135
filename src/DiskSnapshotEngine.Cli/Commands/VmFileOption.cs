using System.CommandLine;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Snapshots;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>--vm FILE.vbox</c> of the snapshot verbs: keeps a VirtualBox machine file in step with the disk. The file is
/// checked before the disk is touched (so a wrong file changes nothing); it is updated after the disk operation
/// succeeded, and a failure then is reported as exactly that: the disk changed, the file did not.
/// </summary>
internal sealed class VmFileOption
{
    private readonly Option<string> _option;

    private VmFileOption(Command command)
    {
        _option = new Option<string>("--vm")
        {
            Description = "A VirtualBox machine file (.vbox) that uses the disk: after the operation its media, snapshots and attachments are updated to match (atomically, the old file kept as FILE-prev).",
            HelpName = "FILE.vbox",
        };
        command.Options.Add(_option);
    }

    public static VmFileOption AddTo(Command command) => new(command);

    /// <summary>
    /// The frame of every verb that changes a disk's snapshots: the disk's full path and open options, the machine
    /// file checked before <paramref name="change"/> and brought in step after it (with --json or
    /// <paramref name="quiet"/> said on stderr, so stdout keeps the one JSON document).
    /// </summary>
    public async Task<int> AroundChangeAsync(CliContext context, string diskArgument, ChainOptions chain,
        Func<string, OpenOptions, Task> change, bool quiet = false)
    {
        string disk = Path.GetFullPath(diskArgument);
        var open = chain.ToOpenOptions(context.Parse, false);
        string? vbox = CheckBefore(context, disk, open);
        await change(disk, open).ConfigureAwait(false);
        return SyncAfter(context, vbox, disk, open, quiet || context.Json);
    }

    /// <summary>
    /// Checks the file before the operation: it must be a machine file that already registers an image of the disk,
    /// and the disk's present state must apply to it. Returns the full path, or null without <c>--vm</c>.
    /// </summary>
    /// <exception cref="DiskImageException">The reason, with "nothing was changed".</exception>
    private string? CheckBefore(CliContext context, string disk, OpenOptions open)
    {
        if (context.Get(_option) is not string given) return null;
        string vbox = Path.GetFullPath(given);
        try
        {
            var doc = AtomicXmlFile.Load(vbox);
            // An interrupted operation has no consistent state to check against; the verb finishes it first, and the
            // update afterwards still reports any problem with the file.
            if (DiskSnapshots.Catalog(disk).Pending is not null)
            {
                _ = new VirtualBoxMediaRegistry(vbox);
                return vbox;
            }
            var state = SnapshotCatalogState.ForDisk(disk, open);
            RequireDiskInFile(vbox, disk, state);
            VboxSnapshotSync.Apply(doc, state, vbox); // in memory only: proves the file can take the disk's state
            // Every snapshot verb leaves a differencing image as the current state; VirtualBox opens those only in VDI (and VMDK).
            if (state.CurrentMedium.Format is MediumFormats.Vhdx or MediumFormats.Raw)
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"VirtualBox cannot open {state.CurrentMedium.Format} differencing images, and this operation makes the disk one; use a VDI disk (dse clone DISK disk.vdi) with VirtualBox",
                    disk);
        }
        catch (DiskImageException e)
        {
            throw new DiskImageException(e.Kind, $"--vm: {e.Detail}; nothing was changed", e.Path ?? vbox, e.Structure, e.FileOffset, e);
        }
        return vbox;
    }

    /// <summary>Brings <paramref name="vbox"/> in step with the disk's present state (<c>dse vm sync virtualbox</c>).</summary>
    /// <exception cref="DiskImageException">Open errors of the disk's images; the errors of <see cref="VboxSnapshotSync.SyncFile"/>; InvalidArgument when the file registers no image of the disk.</exception>
    public static void Sync(string vbox, string disk, OpenOptions open)
    {
        var state = SnapshotCatalogState.ForDisk(disk, open);
        RequireDiskInFile(vbox, disk, state);
        VboxSnapshotSync.SyncFile(vbox, state);
    }

    // Without this, a wrong file would get the disk added as one more, unattached, medium.
    private static void RequireDiskInFile(string vbox, string disk, VmDiskState state)
    {
        var known = new VirtualBoxMediaRegistry(vbox).HardDisks.Select(h => h.Uuid).ToHashSet();
        if (!state.AllMedia.Any(m => known.Contains(m.Id)))
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"the machine file registers no image of {disk}; register the disk first (dse vm register virtualbox)", vbox, "MediaRegistry");
    }

    /// <summary>
    /// After the disk operation succeeded: brings the machine file in step. On failure, says that the disk operation
    /// succeeded and the file was not updated, and returns <see cref="ExitCodes.VmFileNotUpdated"/>.
    /// </summary>
    private static int SyncAfter(CliContext context, string? vbox, string disk, OpenOptions open, bool quiet)
    {
        if (vbox is null) return ExitCodes.Ok;
        try
        {
            Sync(vbox, disk, open);
            // With --json stdout carries only the JSON document.
            if (quiet) context.Note($"updated {vbox}");
            else context.Out.WriteLine($"updated {vbox}");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            string why = e is DiskImageException d ? d.Message : $"{e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}";
            CliApp.WriteError(context.Host, context.Json, "vmFileNotUpdated",
                $"the disk operation succeeded, but {vbox} was NOT updated (it still describes the disk as before): {why}; " +
                $"do not start the VM from the stale file. Fix the cause, then run: " +
                $"dse vm sync virtualbox --vm {ExternalCommand.ShellQuote(vbox)} --disk {ExternalCommand.ShellQuote(disk)}",
                vbox, ExitCodes.VmFileNotUpdated);
            return ExitCodes.VmFileNotUpdated;
        }
    }
}
