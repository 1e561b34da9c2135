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
        MediumFormats.Qcow2 => "qcow2",
        _ => throw new DiskImageException(ErrorKind.Unsupported, $"no QEMU driver type for {format} images"),
    };

    /// <summary>
    /// True when QEMU follows the disk's whole chain by itself: every image above the base is a qcow2, the one format
    /// here whose backing link (file name and backing_fmt) QEMU reads; the base may be any format QEMU opens.
    /// </summary>
    public static bool QemuFollowsChain(VmDiskState state) => FirstUnfollowed(Formats(state)) < 0;

    /// <summary>
    /// The index of the first image above the base (<paramref name="formatsTopFirst"/>: the chain's
    /// <see cref="MediumFormats"/>, the current image first) that QEMU cannot follow to its parent, or -1: the one rule
    /// for the domain XML here and for the CLI's warning on a qcow2 child of a differencing image.
    /// </summary>
    public static int FirstUnfollowed(IReadOnlyList<string> formatsTopFirst)
    {
        for (int i = 0; i < formatsTopFirst.Count - 1; i++)
            if (formatsTopFirst[i] != MediumFormats.Qcow2) return i;
        return -1;
    }

    private static string[] Formats(VmDiskState state) => state.CurrentChain().Select(m => m.Format).ToArray();

    // The format of the first image above the base that QEMU cannot follow to its parent.
    private static string UnfollowedFormat(VmDiskState state)
    {
        var formats = Formats(state);
        return formats[FirstUnfollowed(formats)];
    }

    /// <summary>
    /// True when the domain can use the image files directly: QEMU follows the chain and libvirt knows every format in
    /// it (libvirt 9 has no vhdx storage format, as driver type or backing store).
    /// </summary>
    public static bool OpensAsFiles(VmDiskState state) =>
        QemuFollowsChain(state) && state.CurrentChain().All(m => m.Format != MediumFormats.Vhdx);

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
        if (nbdSocket is null && !QemuFollowsChain(state))
            throw new DiskImageException(ErrorKind.Unsupported,
                $"QEMU cannot follow {UnfollowedFormat(state)} parent links (it follows only qcow2 backing files; its vhdx, vdi and vpc drivers read base images); serve the chain over NBD (dse vm register libvirt does, or: dse serve {ExternalCommand.ShellQuote(disk.Path)} --socket PATH) or flatten it: dse clone {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(FlatName(disk.Path))}",
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
                new XElement("devices", nbdSocket is null ? FileDisk(state.CurrentChain()) : NbdDisk(nbdSocket, disk.IsGolden))));
    }

    // libvirt formatdomain "Hard drives": the image file, then its backing chain spelled out (backingStore with each
    // layer's format), so that libvirt neither probes formats nor guesses; an empty backingStore ends the chain.
    private static XElement FileDisk(IReadOnlyList<MediumInfo> chain) =>
        new("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", DriverType(chain[0].Format))),
            new XElement("source", new XAttribute("file", chain[0].Path)),
            BackingStore(chain, 1),
            Target(),
            chain[0].IsGolden ? new XElement("readonly") : null); // a golden disk: QEMU opens it read-only

    private static XElement BackingStore(IReadOnlyList<MediumInfo> chain, int index) => index == chain.Count
        ? new XElement("backingStore")
        : new XElement("backingStore", new XAttribute("type", "file"),
            new XElement("format", new XAttribute("type", DriverType(chain[index].Format))),
            new XElement("source", new XAttribute("file", chain[index].Path)),
            BackingStore(chain, index + 1));

    // libvirt formatdomain "Hard drives": a network disk with protocol nbd and a unix transport host; the default export.
    // A golden disk is served read-only (LibvirtNbdService), and the domain must know it.
    private static XElement NbdDisk(string socket, bool readOnly) =>
        new("disk", new XAttribute("type", "network"), new XAttribute("device", "disk"),
            new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "raw")),
            new XElement("source", new XAttribute("protocol", "nbd"),
                new XElement("host", new XAttribute("transport", "unix"), new XAttribute("socket", socket))),
            Target(),
            readOnly ? new XElement("readonly") : null);

    private static XElement Target() => new("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio"));

    private static string FlatName(string path) =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path) ?? "",
            System.IO.Path.GetFileNameWithoutExtension(path) + "-flat" + System.IO.Path.GetExtension(path));
}
