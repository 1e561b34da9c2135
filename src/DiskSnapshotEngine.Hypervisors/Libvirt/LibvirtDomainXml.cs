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
    /// parent links), which is why <see cref="Build"/> refuses differencing images.
    /// </summary>
    public static string DriverType(string format) => format switch
    {
        MediumFormats.Vhdx => "vhdx",
        MediumFormats.Vdi => "vdi",
        MediumFormats.Raw => "raw",
        _ => throw new DiskImageException(ErrorKind.Unsupported, $"no QEMU driver type for {format} images"),
    };

    /// <summary>
    /// The domain definition. A golden (sealed) disk is attached <c>&lt;readonly/&gt;</c>: QEMU opens it read-only and
    /// the guest cannot change it (a VM that must write gets a full or linked clone instead).
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument; Unsupported for a differencing image (with the flattening command to run).</exception>
    public static XDocument Build(LibvirtDomainSpec spec, VmDiskState state)
    {
        spec.Validate();
        state.Validate();
        var disk = state.CurrentMedium;
        if (disk.Id != state.Root.Id)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"QEMU cannot follow {disk.Format} parent links (its vhdx and vdi drivers read only base images), so libvirt cannot run this differencing image; flatten it first: dse clone {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(FlatName(disk.Path))}",
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
                new XElement("devices",
                    new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                        new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", DriverType(disk.Format))),
                        new XElement("source", new XAttribute("file", disk.Path)),
                        new XElement("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio")),
                        disk.IsGolden ? new XElement("readonly") : null))));
    }

    private static string FlatName(string path) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path) ?? "",
            System.IO.Path.GetFileNameWithoutExtension(path) + "-flat" + System.IO.Path.GetExtension(path));
}
