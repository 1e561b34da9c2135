using System.CommandLine;
using System.Globalization;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Hypervisors.HyperV;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Hypervisors.VirtualBox;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>dse vm register virtualbox|hyperv|libvirt ...</c> and <c>dse vm checkpoint hyperv ...</c>: hand a disk to a hypervisor.
/// All hypervisor knowledge lives in DiskSnapshotEngine.Hypervisors; this file only parses and prints.
/// </summary>
internal static class VmCommand
{
    public static Command Build()
    {
        var register = new Command("register", "Create a VM for a disk in VirtualBox, Hyper-V or libvirt.")
        {
            RegisterVirtualBox(), RegisterHyperV(), RegisterLibvirt(),
        };
        var checkpoint = new Command("checkpoint", "Take a hypervisor checkpoint of a registered VM.") { CheckpointHyperV() };
        var sync = new Command("sync", "Bring a hypervisor's machine file in step with the disk's snapshots.") { SyncVirtualBox() };
        return new Command("vm", "Register disks with hypervisors (VirtualBox, Hyper-V, libvirt), keep their files in step, take checkpoints.") { register, sync, checkpoint };
    }

    private static Option<string> Name(string what) => new("--name") { Description = $"Name of the {what}.", Required = true, HelpName = "VM" };

    private static Option<string> Disk() => new("--disk")
    {
        Description = "The disk image; a differencing image brings its whole parent chain.",
        Required = true,
        HelpName = "DISK",
    };

    private static Option<int> Memory(int defaultMiB) => new("--memory") { Description = "Memory in MiB.", DefaultValueFactory = _ => defaultMiB, HelpName = "MiB" };

    private static Option<bool> DryRun(string what) => new("--dry-run") { Description = what };

    /// <summary>
    /// The adapter boundary: the disk's state comes from its snapshot catalog when it has one (every snapshot layer,
    /// branch and the current state), otherwise from its opened chain; both go to the same writers.
    /// </summary>
    private static VmDiskState LoadDiskState(CliContext context, Option<string> disk, ChainOptions chain) =>
        SnapshotCatalogState.ForDisk(Path.GetFullPath(context.Get(disk)!), chain.ToOpenOptions(context.Parse, writable: false));

    private static Command RegisterVirtualBox()
    {
        var name = Name("VirtualBox machine");
        var disk = Disk();
        var osType = new Option<string>("--os-type") { Description = "VirtualBox guest OS type (VBoxManage list ostypes).", DefaultValueFactory = _ => "Other_64", HelpName = "T" };
        var memory = Memory(1024);
        var cpus = new Option<int>("--cpus") { Description = "Virtual CPUs.", DefaultValueFactory = _ => 1, HelpName = "N" };
        var folder = new Option<string>("--folder") { Description = "Base folder for the machine folder (default: ~/VirtualBox VMs).", HelpName = "DIR" };
        var dryRun = DryRun("Write nothing; print the VBoxManage commands that would build the same machine.");
        var command = new Command("virtualbox", "Write a .vbox machine file holding the disk's chain and snapshots, then VBoxManage registervm.")
        {
            name, disk, osType, memory, cpus, folder, dryRun,
        };
        var chain = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            var state = LoadDiskState(context, disk, chain);
            var spec = new VboxMachineSpec(context.Get(name)!, context.Get(osType)!, context.Get(memory), context.Get(cpus));
            var r = new VirtualBoxRegistrar().Register(spec, state, context.Get(folder), context.Get(dryRun));
            if (context.Json)
            {
                context.WriteJson(new VboxView(spec.Name, Path.GetFullPath(context.Get(disk)!), context.Get(dryRun),
                    context.Get(dryRun) ? null : r.VboxPath, r.Registered, r.Commands.Select(c => c.ToString())));
                if (r.Notice is not null && !context.Get(dryRun)) context.Note(r.Notice);
                return ExitCodes.Ok;
            }
            if (context.Get(dryRun))
            {
                foreach (var c in r.Commands) context.Out.WriteLine(c.ToString());
                if (state.AllSnapshots.Any())
                    context.Note("VBoxManage cannot adopt existing snapshot images; without --dry-run the .vbox file carries the snapshot tree");
                return ExitCodes.Ok;
            }
            context.Out.WriteLine($"wrote {r.VboxPath}");
            if (r.Registered) context.Out.WriteLine($"registered '{spec.Name}' with VirtualBox");
            else if (r.Notice is not null) context.Note(r.Notice);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command SyncVirtualBox()
    {
        var vm = new Option<string>("--vm") { Description = "The machine file (.vbox) that uses the disk.", Required = true, HelpName = "FILE.vbox" };
        var disk = Disk();
        var command = new Command("virtualbox",
            "Update a .vbox to the disk's present images and snapshots (media tree, Snapshot elements, attachments, currentSnapshot); the rest of the file is kept, the old one saved as FILE-prev.")
        {
            vm, disk,
        };
        var chain = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            string vbox = Path.GetFullPath(context.Get(vm)!);
            VmFileOption.Sync(vbox, Path.GetFullPath(context.Get(disk)!), chain.ToOpenOptions(context.Parse, writable: false));
            context.Result(new VboxSyncView(vbox, Path.GetFullPath(context.Get(disk)!)), $"updated {vbox}");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command RegisterHyperV()
    {
        var name = Name("Hyper-V VM");
        var disk = Disk();
        var generation = new Option<int>("--generation") { Description = "1 (BIOS) or 2 (UEFI).", DefaultValueFactory = _ => 2, HelpName = "1|2" };
        generation.AcceptOnlyFromAmong("1", "2");
        var memory = Memory(1024);
        var dryRun = DryRun("Print the PowerShell script without running it.");
        var command = new Command("hyperv", "Create a Hyper-V VM with New-VM and attach the disk (on Windows; elsewhere print the script).")
        {
            name, disk, generation, memory, dryRun,
        };
        var chain = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            var state = LoadDiskState(context, disk, chain);
            var r = new HyperVRegistrar().Register(new HyperVVmSpec(context.Get(name)!, context.Get(generation), context.Get(memory)), state, context.Get(dryRun));
            return Report(context, r, context.Get(name)!, $"created Hyper-V VM '{context.Get(name)}'");
        });
        return command;
    }

    private static Command CheckpointHyperV()
    {
        var name = Name("Hyper-V VM");
        var snapshot = new Option<string>("--snapshot-name") { Description = "Name of the checkpoint (Hyper-V's default when omitted).", HelpName = "N" };
        var via = new Option<string>("--via")
        {
            Description = "wmi (Msvm_VirtualSystemSnapshotService, Windows) or powershell (Checkpoint-VM).",
            DefaultValueFactory = _ => "wmi",
        };
        via.AcceptOnlyFromAmong("wmi", "powershell");
        var dryRun = DryRun("Print the PowerShell script without running it.");
        var command = new Command("hyperv", "Take a Hyper-V checkpoint (a full snapshot) of a VM.") { name, snapshot, via, dryRun };
        VerbAction.Set(command, context =>
        {
            var r = new HyperVRegistrar().Checkpoint(context.Get(name)!, context.Get(snapshot), context.Get(dryRun), viaWmi: context.Get(via) == "wmi");
            return Report(context, r, context.Get(name)!, $"checkpoint of '{context.Get(name)}' taken");
        });
        return command;
    }

    private static int Report(CliContext context, HyperVResult r, string name, string done)
    {
        if (context.Json)
        {
            context.WriteJson(new HyperVView(name, r.Ran, r.Ran ? null : r.Script));
            if (r.Notice is not null) context.Note(r.Notice);
            return ExitCodes.Ok;
        }
        if (r.Ran)
        {
            context.Out.WriteLine(done);
            return ExitCodes.Ok;
        }
        context.Out.Write(r.Script);
        if (r.Notice is not null) context.Note(r.Notice);
        return ExitCodes.Ok;
    }

    private static Command RegisterLibvirt()
    {
        var name = Name("libvirt domain");
        var disk = Disk();
        var memory = Memory(1024);
        var connect = new Option<string>("--connect") { Description = "libvirt connection URI (virsh -c), e.g. qemu:///system.", HelpName = "URI" };
        var unitDir = new Option<string>("--unit-dir")
        {
            Description = "For a disk served over NBD (differencing or VHDX): write the systemd unit running 'dse serve' into DIR (e.g. /etc/systemd/system) instead of printing it.",
            HelpName = "DIR",
        };
        var socketGroup = new Option<string>("--socket-group")
        {
            Description = "For a disk served over NBD: the group QEMU runs in (e.g. libvirt-qemu or kvm), given access to the socket; without it only root may connect.",
            HelpName = "GROUP",
        };
        var overlay = new Option<string>("--overlay")
        {
            Description = "Give the domain its own new qcow2 overlay at PATH: a linked clone of DISK (which then stays as it is, the golden image) that QEMU runs by itself, its backing chain written into the domain. A chain with a VHDX (libvirt knows no vhdx) is served over NBD instead.",
            HelpName = "PATH.qcow2",
        };
        var dryRun = DryRun("Print the domain XML, the systemd unit when the disk is served over NBD, and the commands, without defining or writing anything (not even the overlay).");
        var command = new Command("libvirt",
            "Define a libvirt (QEMU/KVM) domain booting from the disk with virsh define. A differencing chain or a VHDX (which QEMU cannot open) becomes an NBD disk on a unix socket that a systemd unit serves with 'dse serve'.")
        {
            name, disk, memory, connect, unitDir, socketGroup, overlay, dryRun,
        };
        var chain = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            var state = LoadDiskState(context, disk, chain);
            string? overlayPath = context.Get(overlay) is { } o ? LibvirtOverlay.CheckPath(o) : null;
            ParentSeal? goldenSeal = null;
            if (overlayPath is not null)
            {
                state = context.Get(dryRun) ? LibvirtOverlay.Planned(state, overlayPath)
                    : LibvirtOverlay.Create(state, overlayPath, chain.ToOpenOptions(context.Parse, writable: false), out goldenSeal);
                if (context.Get(dryRun))
                    context.Note($"without --dry-run, first creates the overlay: dse create {ExternalCommand.ShellQuote(overlayPath)} --parent {ExternalCommand.ShellQuote(state.CurrentChain()[1].Path)}");
            }
            var nbd = new LibvirtNbdOptions(SelfCommand(), chain.ServeArguments(context.Parse), context.Get(unitDir), context.Get(socketGroup));
            LibvirtRegistration r;
            try
            {
                r = new LibvirtRegistrar().Register(new LibvirtDomainSpec(context.Get(name)!, context.Get(memory)), state, context.Get(connect), context.Get(dryRun), nbd);
            }
            catch when (overlayPath is not null && !context.Get(dryRun))
            {
                // A refused or failed define leaves nothing behind: the overlay made for it goes too.
                LibvirtOverlay.Remove(overlayPath);
                throw;
            }
            if (overlayPath is not null && !context.Get(dryRun))
            {
                if (!context.Json) context.Out.WriteLine($"created {overlayPath} (qcow2 overlay of {state.CurrentChain()[1].Path})");
                SealCommand.WarnIfParentUnsealed(context, goldenSeal!); // as clone --linked says it
            }
            if (context.Json)
            {
                context.WriteJson(new LibvirtView(context.Get(name), Path.GetFullPath(context.Get(disk)!), overlayPath, r.Defined, r.DomainXml,
                    r.Command.ToString(), r.Service?.SocketPath, r.Service?.UnitName, r.UnitPath, r.UnitPath is null ? r.Service?.UnitText : null,
                    r.UnitPath is { } written ? r.Service?.EnableCommandFor(written) : r.Service?.EnableCommand()));
                return ExitCodes.Ok;
            }
            if (r.Defined)
            {
                context.Out.WriteLine($"defined libvirt domain '{context.Get(name)}'");
                if (r.Service is { } service)
                {
                    if (r.UnitPath is { } unit) context.Out.WriteLine($"wrote {unit}");
                    else context.Out.Write(service.UnitText);
                    context.Note($"the disk is an NBD source on {service.SocketPath}: " + (r.UnitPath is null ? $"save the unit above as /etc/systemd/system/{service.UnitName}, then run " : "run ") +
                        $"{(r.UnitPath is { } written ? service.EnableCommandFor(written) : service.EnableCommand())} before starting the domain");
                }
                return ExitCodes.Ok;
            }
            context.Out.WriteLine(r.DomainXml);
            if (r.Service is { } planned)
            {
                context.Out.Write(planned.UnitText);
                string unitFile = Path.Combine(context.Get(unitDir) is { } d ? Path.GetFullPath(d) : "/etc/systemd/system", planned.UnitName);
                context.Note($"save the unit as {ExternalCommand.ShellQuote(unitFile)} and run: {planned.EnableCommandFor(unitFile)}");
            }
            context.Note(string.Create(CultureInfo.InvariantCulture, $"save this XML as {context.Get(name)}.xml and run: {r.Command}"));
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// How systemd runs this very dse: the apphost itself, or the dotnet host with dse.dll (also when dse runs inside
    /// another host, as in the tests).
    /// </summary>
    private static IReadOnlyList<string> SelfCommand()
    {
        // dse.dll beside the running code (Assembly.Location is empty in a Native AOT dse, which takes the first branch).
        string dll = Path.Combine(AppContext.BaseDirectory, "dse.dll");
        string? host = Environment.ProcessPath;
        if (host is not null && Path.GetFileNameWithoutExtension(host) == "dse") return [host];
        if (host is not null && Path.GetFileNameWithoutExtension(host) == "dotnet") return [host, dll];
        string dotnet = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(d => Path.Combine(d, "dotnet")).FirstOrDefault(File.Exists) ?? "/usr/bin/dotnet";
        return [dotnet, dll];
    }

    // The --json documents of vm register/sync/checkpoint (keys in this order).
    internal sealed record VboxView(string Name, string Image, bool DryRun, string? VboxFile, bool Registered, IEnumerable<string> Commands);
    internal sealed record VboxSyncView(string VboxFile, string Image);
    internal sealed record HyperVView(string? Name, bool Ran, string? Script);
    internal sealed record LibvirtView(string? Name, string Image, string? Overlay, bool Defined, string DomainXml, string Command, string? NbdSocket,
        string? UnitName, string? UnitFile, string? UnitText, string? EnableCommand);
}
