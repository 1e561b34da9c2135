using System.Globalization;
using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>Spellings the VirtualBox settings schema (VirtualBox-settings.xsd) requires of values.</summary>
internal static class VboxXml
{
    /// <summary>Namespace of settings files written since VirtualBox 3.</summary>
    public static readonly XNamespace Ns = "http://www.virtualbox.org/";

    /// <summary>Namespace of old settings files (innotek era, as libvirt's vbox driver still writes them).</summary>
    public static readonly XNamespace OldNs = "http://www.innotek.de/VirtualBox-settings";

    /// <summary>
    /// Settings version we write: 1.19 is what VirtualBox 7.0 to 7.2 write for an x86 machine without the 1.20
    /// Platform element, so every VirtualBox 7 reads it and the schema accepts it.
    /// </summary>
    public static string SettingsVersion =>
        "1.19-" + (OperatingSystem.IsWindows() ? "windows" : OperatingSystem.IsMacOS() ? "macosx" : "linux");

    /// <summary>TNonNullUUID: braces, lower-case hex as VirtualBox writes it.</summary>
    public static string Uuid(Guid id) => "{" + id.ToString("D") + "}";

    /// <summary>TPresentDateTimeUTC: must end in Z (an offset such as +00:00 is rejected).</summary>
    public static string Time(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Parses a settings-file UUID (braces optional).</summary>
    public static Guid ParseUuid(string? text, string path, string structure) =>
        Guid.TryParse(text?.Trim().Trim('{', '}'), out var g) && g != Guid.Empty
            ? g
            : throw new DiskImageException(ErrorKind.InvalidFormat, $"'{text}' is not a UUID", path, structure);

    /// <summary>Parses a settings-file time stamp.</summary>
    public static DateTimeOffset ParseTime(string? text, string path, string structure) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new DiskImageException(ErrorKind.InvalidFormat, $"'{text}' is not a time stamp", path, structure);

    /// <summary>The root's namespace, after checking that this is a VirtualBox machine settings file.</summary>
    public static (XNamespace Ns, XElement Machine) MachineOf(XDocument doc, string path)
    {
        var root = doc.Root;
        if (root is null || root.Name.LocalName != "VirtualBox" || (root.Name.Namespace != Ns && root.Name.Namespace != OldNs))
            throw new DiskImageException(ErrorKind.InvalidFormat,
                $"the root element is {root?.Name}, not VirtualBox in {Ns} or {OldNs}", path, "VirtualBox");
        var ns = root.Name.Namespace;
        var machine = root.Element(ns + "Machine")
            ?? throw new DiskImageException(ErrorKind.InvalidFormat, "no Machine element (a global VirtualBox.xml is not a machine file)", path, "Machine");
        return (ns, machine);
    }

    /// <summary>
    /// One MediaRegistry HardDisk element for a medium and its differencing descendants, nested as VirtualBox nests them.
    /// Only a base disk carries <c>type</c>; the schema forbids it on nested (differencing) disks.
    /// </summary>
    public static XElement HardDisk(XNamespace ns, MediumInfo medium, bool isBase) =>
        new(ns + "HardDisk",
            new XAttribute("uuid", Uuid(medium.Id)),
            new XAttribute("location", medium.Path),
            new XAttribute("format", medium.Format),
            isBase ? new XAttribute("type", MediumType(medium)) : null,
            medium.Children.Select(c => HardDisk(ns, c, isBase: false)));

    /// <summary>
    /// The TMediumType of a base disk (VirtualBox-settings.xsd: Normal, Immutable, Writethrough, Shareable, Readonly,
    /// MultiAttach). A golden image is MultiAttach: VirtualBox never writes it and gives every machine that attaches it
    /// its own differencing image, which persists, as a dse linked clone does. Immutable would do the same but reset
    /// those differencing images at every start (losing the clones' work); Readonly is refused for hard disks
    /// (VirtualBox reserves it for DVD and floppy images); Writethrough and Shareable cannot have children. A layer
    /// sealed only as a dse snapshot layer stays Normal: VirtualBox's own snapshots freeze it the same way.
    /// </summary>
    public static string MediumType(MediumInfo medium) => medium.IsGolden ? "MultiAttach" : "Normal";

    /// <summary>Every Image/@uuid reference under an element (attachments of a Hardware or StorageControllers subtree).</summary>
    public static IEnumerable<XElement> AttachedImages(XElement scope, XNamespace ns) =>
        scope.Descendants(ns + "AttachedDevice")
            .Where(d => (string?)d.Attribute("type") == "HardDisk")
            .Select(d => d.Element(ns + "Image"))
            .OfType<XElement>();
}
