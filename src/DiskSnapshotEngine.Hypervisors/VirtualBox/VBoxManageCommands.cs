using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>The VBoxManage command lines that register a machine, as argument lists.</summary>
public static class VBoxManageCommands
{
    /// <summary>Program name on the PATH.</summary>
    public const string Program = "VBoxManage";

    /// <summary><c>VBoxManage registervm FILE</c>: makes VirtualBox load a machine file written beside it.</summary>
    public static ExternalCommand RegisterVm(string vboxPath) => ExternalCommand.Of(Program, "registervm", vboxPath);

    /// <summary><c>VBoxManage unregistervm NAME</c> (without --delete: the images stay), to roll back a registration.</summary>
    public static ExternalCommand UnregisterVm(string nameOrUuid) => ExternalCommand.Of(Program, "unregistervm", nameOrUuid);

    /// <summary>
    /// The commands that build the same machine through VBoxManage alone (what <c>--dry-run</c> prints). Each image of
    /// the current chain is attached in turn, base first: attaching an image registers it, and VirtualBox opens a
    /// differencing VDI only when its parent is already registered, so the last attach leaves the current image in place.
    /// VBoxManage cannot adopt existing snapshot images as snapshots (<c>snapshot take</c> would create new ones);
    /// the machine file written without --dry-run carries the snapshot tree.
    /// </summary>
    public static IReadOnlyList<ExternalCommand> CreateMachine(VboxMachineSpec spec, VmDiskState state, string baseFolder)
    {
        var list = new List<ExternalCommand>
        {
            ExternalCommand.Of(Program, "createvm", "--name", spec.Name, "--ostype", spec.OsType, "--basefolder", baseFolder,
                "--uuid", spec.MachineId.ToString("D"), "--register"),
            ExternalCommand.Of(Program, "modifyvm", spec.Name, "--memory", spec.MemoryMiB.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--cpus", spec.Cpus.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ExternalCommand.Of(Program, "storagectl", spec.Name, "--name", VboxMachineSpec.ControllerName, "--add", "sata",
                "--controller", "IntelAhci", "--portcount", "1", "--bootable", "on"),
        };
        foreach (var m in PathTo(state.Root, state.CurrentMediumId) ?? new List<MediumInfo> { state.CurrentMedium })
            list.Add(ExternalCommand.Of(Program, "storageattach", spec.Name, "--storagectl", VboxMachineSpec.ControllerName,
                "--port", "0", "--device", "0", "--type", "hdd", "--medium", m.Path));
        return list;
    }

    /// <summary>The media from <paramref name="root"/> down to the one with id <paramref name="target"/>, or null.</summary>
    internal static List<MediumInfo>? PathTo(MediumInfo root, Guid target)
    {
        if (root.Id == target) return new List<MediumInfo> { root };
        foreach (var c in root.Children)
            if (PathTo(c, target) is { } rest)
            {
                rest.Insert(0, root);
                return rest;
            }
        return null;
    }
}
