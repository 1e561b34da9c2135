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
    /// the machine file written without --dry-run carries the snapshot tree. A golden base is first made MultiAttach
    /// (<c>modifymedium --type multiattach</c>, which also registers it; see <see cref="VboxXml.MediumType"/>) and is
    /// attached itself only when it is the current image, so VirtualBox never writes it.
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
        var chain = state.CurrentChain().Reverse().ToList(); // base first: VirtualBox registers a parent before its child
        if (chain[0].IsGolden)
            list.Add(ExternalCommand.Of(Program, "modifymedium", "disk", chain[0].Path, "--type", "multiattach"));
        foreach (var m in chain)
        {
            if (m.IsGolden && ReferenceEquals(m, chain[0]) && chain.Count > 1) continue;
            list.Add(ExternalCommand.Of(Program, "storageattach", spec.Name, "--storagectl", VboxMachineSpec.ControllerName,
                "--port", "0", "--device", "0", "--type", "hdd", "--medium", m.Path));
        }
        return list;
    }
}
