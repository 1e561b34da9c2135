using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>What a new VirtualBox machine looks like besides its disk.</summary>
/// <param name="Name">Machine name (also the .vbox file name).</param>
/// <param name="OsType">VirtualBox guest OS type id (<c>VBoxManage list ostypes</c>).</param>
/// <param name="MemoryMiB">RAM in MiB (the schema allows 4 to 2097152).</param>
/// <param name="Cpus">Virtual CPU count.</param>
public sealed record VboxMachineSpec(string Name, string OsType = "Other_64", int MemoryMiB = 1024, int Cpus = 1)
{
    /// <summary>Storage controller the disk is attached to (an AHCI SATA controller, port 0).</summary>
    public const string ControllerName = "SATA";

    /// <summary>Machine UUID; a fresh one unless the caller fixes it.</summary>
    public Guid MachineId { get; init; } = Guid.NewGuid();

    /// <summary>Checks the values VirtualBox and its schema would refuse.</summary>
    /// <exception cref="DiskImageException">InvalidArgument.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) Bad("the machine name is empty");
        if (Name.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) >= 0 || Name.Contains('/') || Name.Contains('\\'))
            Bad($"the machine name '{Name}' cannot be a file name");
        if (string.IsNullOrWhiteSpace(OsType)) Bad("the OS type is empty");
        if (MemoryMiB is < 4 or > 2097152) Bad($"memory {MemoryMiB} MiB is outside 4..2097152 MiB");
        if (Cpus is < 1 or > 64) Bad($"CPU count {Cpus} is outside 1..64");
    }

    private static void Bad(string m) => throw new DiskImageException(ErrorKind.InvalidArgument, m);
}

/// <summary>
/// Writes a new VirtualBox machine settings file (.vbox) for one disk: the MediaRegistry holds the disk's whole image
/// tree, the current state attaches the current medium, and Snapshot elements mirror the snapshot tree.
/// </summary>
public static class VboxMachineWriter
{
    /// <summary>Builds the settings document.</summary>
    /// <exception cref="DiskImageException">InvalidArgument for a bad spec or state; Unsupported for what VirtualBox cannot open.</exception>
    public static XDocument Create(VboxMachineSpec spec, VmDiskState state, DateTimeOffset now)
    {
        spec.Validate();
        state.Validate();
        CheckVirtualBoxCanOpen(state);
        var ns = VboxXml.Ns;
        var machine = new XElement(ns + "Machine",
            new XAttribute("uuid", VboxXml.Uuid(spec.MachineId)),
            new XAttribute("name", spec.Name),
            new XAttribute("OSType", spec.OsType),
            state.CurrentSnapshotId is Guid cur ? new XAttribute("currentSnapshot", VboxXml.Uuid(cur)) : null,
            new XAttribute("snapshotFolder", "Snapshots"),
            new XAttribute("lastStateChange", VboxXml.Time(now)),
            new XElement(ns + "MediaRegistry",
                new XElement(ns + "HardDisks", VboxXml.HardDisk(ns, state.Root, isBase: true))));
        if (state.Snapshots.Count == 1) machine.Add(SnapshotElement(ns, spec, state.Snapshots[0]));
        machine.Add(Hardware(ns, spec, state.CurrentMediumId));
        return new XDocument(new XDeclaration("1.0", "UTF-8", null),
            new XComment(" Written by DiskSnapshotEngine (dse vm register virtualbox). VirtualBox rewrites this file when it changes the machine. "),
            new XElement(ns + "VirtualBox", new XAttribute("version", VboxXml.SettingsVersion), machine));
    }

    /// <summary>
    /// Refuses what VirtualBox itself cannot open. Its VHDX backend (Storage/VHDX.cpp) advertises only file access
    /// (VD_CAP_FILE | VD_CAP_VFS): no differencing images, so no VHDX children, and no UUID of its own; RAW is the same.
    /// VDI and VMDK (read back from existing files) do chain. VirtualBox also keeps a single root snapshot.
    /// </summary>
    internal static void CheckVirtualBoxCanOpen(VmDiskState state)
    {
        foreach (var m in state.AllMedia)
        {
            // Its QCOW backend reads qcow2 as a single image: a backing file is neither followed nor written.
            if (m.Format == MediumFormats.Qcow2 && (m.Children.Count > 0 || m.Id != state.Root.Id))
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"VirtualBox cannot open qcow2 differencing images (its QCOW backend follows no backing file); flatten it first: dse clone {Processes.ExternalCommand.ShellQuote(state.CurrentMedium.Path)} flat.vdi",
                    m.Path);
            if (m.Children.Count > 0 && (m.Format == MediumFormats.Vhdx || m.Format == MediumFormats.Raw))
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"VirtualBox cannot open {m.Format} differencing images (only VDI and VMDK chain); flatten it first: dse clone {Processes.ExternalCommand.ShellQuote(m.Children[0].Path)} flat.vdi",
                    m.Path);
        }
        if (state.Snapshots.Count > 1)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"VirtualBox keeps one root snapshot; the disk has {state.Snapshots.Count} (sibling snapshots must hang under a common parent)");
    }

    private static XElement SnapshotElement(XNamespace ns, VboxMachineSpec spec, SnapshotInfo s) =>
        new(ns + "Snapshot",
            new XAttribute("uuid", VboxXml.Uuid(s.Id)),
            new XAttribute("name", s.Name),
            new XAttribute("timeStamp", VboxXml.Time(s.Time)),
            s.Description is null ? null : new XElement(ns + "Description", s.Description),
            Hardware(ns, spec, s.AttachedMediumId),
            s.Children.Count == 0 ? null : new XElement(ns + "Snapshots", s.Children.Select(c => SnapshotElement(ns, spec, c))));

    /// <summary>The machine's hardware with the disk attached; StorageControllers sits inside Hardware as VirtualBox 7 writes it.</summary>
    internal static XElement Hardware(XNamespace ns, VboxMachineSpec spec, Guid attachedMedium) =>
        new(ns + "Hardware",
            new XElement(ns + "CPU", new XAttribute("count", spec.Cpus)),
            new XElement(ns + "Memory", new XAttribute("RAMSize", spec.MemoryMiB)),
            new XElement(ns + "Boot",
                new XElement(ns + "Order", new XAttribute("position", 1), new XAttribute("device", "HardDisk")),
                new XElement(ns + "Order", new XAttribute("position", 2), new XAttribute("device", "None")),
                new XElement(ns + "Order", new XAttribute("position", 3), new XAttribute("device", "None")),
                new XElement(ns + "Order", new XAttribute("position", 4), new XAttribute("device", "None"))),
            new XElement(ns + "StorageControllers",
                new XElement(ns + "StorageController",
                    new XAttribute("name", VboxMachineSpec.ControllerName),
                    new XAttribute("type", "AHCI"),
                    new XAttribute("PortCount", 1),
                    new XAttribute("useHostIOCache", "false"),
                    new XAttribute("Bootable", "true"),
                    new XElement(ns + "AttachedDevice",
                        new XAttribute("type", "HardDisk"),
                        new XAttribute("hotpluggable", "false"),
                        new XAttribute("port", 0),
                        new XAttribute("device", 0),
                        new XElement(ns + "Image", new XAttribute("uuid", VboxXml.Uuid(attachedMedium)))))));
}
