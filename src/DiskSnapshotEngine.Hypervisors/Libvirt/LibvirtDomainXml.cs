using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>What a new libvirt domain looks like.</summary>
/// <param name="Name">Domain name.</param>
/// <param name="MemoryMiB">Memory in MiB.</param>
/// <param name="Cpus">Virtual CPUs.</param>
public sealed record LibvirtDomainSpec(string Name, int MemoryMiB = 1024, int Cpus = 1)
{
    /// <summary>Domain UUID; a fresh one unless the caller fixes it.</summary>
    public Guid Uuid { get; init; } = Guid.NewGuid();

    /// <summary>Checks what libvirt would refuse.</summary>
    /// <exception cref="DiskImageException">InvalidArgument.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) Bad("the domain name is empty");
        if (Name.Contains('/') || Name.Any(char.IsControl)) Bad($"libvirt domain names cannot contain '/' or control characters: '{Name}'");
        if (MemoryMiB < 1) Bad($"memory {MemoryMiB} MiB is not positive");
        if (Cpus is < 1 or > 4096) Bad($"CPU count {Cpus} is outside 1..4096");
    }

    private static void Bad(string m) => throw new DiskImageException(ErrorKind.InvalidArgument, m);
}

/// <summary>The libvirt domain XML for a QEMU/KVM guest booting from one disk image.</summary>
public static class LibvirtDomainXml
{
    /// <summary>
    /// QEMU's format driver name for a medium format. QEMU's vhdx and vdi drivers read single images only (no
    /// parent links), which is why differencing images go over NBD (<see cref="LibvirtNbdService"/>).
    /// </summary>
    public static string DriverType(string format) => format switch
    {
        MediumFormats.Vhdx => "vhdx",
        MediumFormats.Vdi => "vdi",
        MediumFormats.Raw => "raw",
        MediumFormats.Vhd => "vpc",
        _ => throw new DiskImageException(ErrorKind.Unsupported, $"no QEMU driver type for {format} images"),
    };

    /// <summary>
    /// The domain definition. With <paramref name="nbdSocket"/> the disk is an NBD network source on that unix socket
    /// (raw: <c>dse serve</c> presents the whole chain as plain bytes); without it, the image file itself.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument; Unsupported for a differencing image without an NBD socket (with the command that would serve it).</exception>
    public static XDocument Build(LibvirtDomainSpec spec, VmDiskState state, string? nbdSocket = null)
    {
        spec.Validate();
        state.Validate();
        var disk = state.CurrentMedium;
        if (nbdSocket is null && disk.Id != state.Root.Id)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"QEMU cannot follow {disk.Format} parent links (its vhdx and vdi drivers read only base images); serve the chain over NBD (dse vm register libvirt does, or: dse serve {ExternalCommand.ShellQuote(disk.Path)} --socket PATH) or flatten it: dse clone {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(FlatName(disk.Path))}",
                disk.Path);
        return new XDocument(
            new XElement("domain", new XAttribute("type", "kvm"),
                new XElement("name", spec.Name),
                new XElement("uuid", spec.Uuid.ToString("D")),
                new XElement("memory", new XAttribute("unit", "MiB"), spec.MemoryMiB),
                new XElement("vcpu", spec.Cpus),
                new XElement("os",
                    new XElement("type", new XAttribute("arch", "x86_64"), "hvm"),
                    new XElement("boot", new XAttribute("dev", "hd"))),
                new XElement("devices", nbdSocket is null ? FileDisk(disk) : NbdDisk(nbdSocket))));
    }

    private static XElement FileDisk(MediumInfo disk) =>
        new("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", DriverType(disk.Format))),
            new XElement("source", new XAttribute("file", disk.Path)),
            Target());

    // libvirt formatdomain "Hard drives": a network disk with protocol nbd and a unix transport host; the default export.
    private static XElement NbdDisk(string socket) =>
        new("disk", new XAttribute("type", "network"), new XAttribute("device", "disk"),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "raw")),
            new XElement("source", new XAttribute("protocol", "nbd"),
                new XElement("host", new XAttribute("transport", "unix"), new XAttribute("socket", socket))),
            Target());

    private static XElement Target() => new("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio"));

    private static string FlatName(string path) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path) ?? "",
            System.IO.Path.GetFileNameWithoutExtension(path) + "-flat" + System.IO.Path.GetExtension(path));
}
