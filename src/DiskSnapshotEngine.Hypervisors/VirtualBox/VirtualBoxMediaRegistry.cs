using System.Xml;
using System.Xml.Linq;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>
/// A read-only view of the media registry of a VirtualBox machine file (<c>.vbox</c>) or of the global
/// <c>VirtualBox.xml</c>: the HardDisk elements (nested ones are differencing children) with their uuid and location.
/// Used as a parent location source: a differencing VDI names its parent only by uuid, and the registry says where
/// that uuid lives. Both the current namespace (http://www.virtualbox.org/) and the old one
/// (http://www.innotek.de/VirtualBox-settings) are read. The file is never written.
/// </summary>
public sealed class VirtualBoxMediaRegistry : IParentLocationSource
{
    /// <summary>Namespace of settings files written by VirtualBox 4 and later.</summary>
    public const string CurrentNamespace = "http://www.virtualbox.org/";

    /// <summary>Namespace of settings files written by innotek-era VirtualBox (and libvirt's vbox driver).</summary>
    public const string LegacyNamespace = "http://www.innotek.de/VirtualBox-settings";

    // A settings file is a few hundred KiB at most; a larger one is not a registry we should parse.
    private const long MaxFileBytes = 64L << 20;

    private readonly List<MediumEntry> _hardDisks = new();

    /// <summary>One HardDisk element.</summary>
    /// <param name="Uuid">The medium's uuid (for a VDI, its uuidCreate).</param>
    /// <param name="Location">The location as written in the file.</param>
    /// <param name="FullPath">The location resolved against the registry file's folder.</param>
    /// <param name="Format">The format attribute (VDI, VMDK, ...), if any.</param>
    /// <param name="ParentUuid">The uuid of the enclosing HardDisk (the parent), or null for a base medium.</param>
    public sealed record MediumEntry(Guid Uuid, string Location, string FullPath, string? Format, Guid? ParentUuid);

    /// <summary>Reads a registry file.</summary>
    /// <exception cref="DiskImageException">FileNotFound, InvalidFormat (not XML, not a VirtualBox settings file), Io.</exception>
    public VirtualBoxMediaRegistry(string registryPath)
    {
        RegistryPath = System.IO.Path.GetFullPath(registryPath);
        if (!File.Exists(RegistryPath))
            throw new DiskImageException(ErrorKind.FileNotFound, "the VirtualBox registry file does not exist", RegistryPath);
        XDocument doc;
        try
        {
            var info = new FileInfo(RegistryPath);
            if (info.Length > MaxFileBytes)
                throw new DiskImageException(ErrorKind.InvalidFormat, $"{info.Length} bytes is too large for a VirtualBox settings file", RegistryPath);
            var settings = new XmlReaderSettings
            {
                DtdProcessing = DtdProcessing.Prohibit,
                XmlResolver = null,
                MaxCharactersInDocument = MaxFileBytes,
            };
            using var reader = XmlReader.Create(RegistryPath, settings);
            doc = XDocument.Load(reader);
        }
        catch (XmlException e)
        {
            throw new DiskImageException(ErrorKind.InvalidFormat, $"not a well-formed XML file: {e.Message}", RegistryPath, "VirtualBox settings", null, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiskImageException(ErrorKind.Io, $"cannot read the registry: {e.Message}", RegistryPath, null, null, e);
        }

        var root = doc.Root;
        if (root is null || root.Name.LocalName != "VirtualBox"
            || (root.Name.NamespaceName != CurrentNamespace && root.Name.NamespaceName != LegacyNamespace))
            throw new DiskImageException(ErrorKind.InvalidFormat,
                $"the root element is {root?.Name.ToString() ?? "(none)"}, not VirtualBox in {CurrentNamespace} or {LegacyNamespace}",
                RegistryPath, "VirtualBox settings");

        var ns = root.Name.Namespace;
        string folder = System.IO.Path.GetDirectoryName(RegistryPath)!;
        // HardDisk elements live under MediaRegistry/HardDisks (Machine or Global); children nest inside their parent.
        foreach (var disks in root.Descendants(ns + "HardDisks"))
            foreach (var disk in disks.Elements(ns + "HardDisk"))
                Collect(disk, ns, folder, null);
    }

    private void Collect(XElement disk, XNamespace ns, string folder, Guid? parent)
    {
        Guid? uuid = ParseUuid((string?)disk.Attribute("uuid"));
        string? location = (string?)disk.Attribute("location");
        if (uuid is Guid id && !string.IsNullOrEmpty(location))
            _hardDisks.Add(new MediumEntry(id, location, Resolve(folder, location), (string?)disk.Attribute("format"), parent));
        foreach (var child in disk.Elements(ns + "HardDisk"))
            Collect(child, ns, folder, uuid);
    }

    private static Guid? ParseUuid(string? text) =>
        text is not null && Guid.TryParse(text.Trim().Trim('{', '}'), out var g) ? g : null;

    private static string Resolve(string folder, string location)
    {
        string loc = location;
        // Files written on Windows use backslashes; a relative one still means "below the registry's folder".
        if (!OperatingSystem.IsWindows() && loc.Contains('\\') && !IsWindowsAbsolute(loc)) loc = loc.Replace('\\', '/');
        if (IsWindowsAbsolute(loc) && !OperatingSystem.IsWindows()) return loc;
        return System.IO.Path.GetFullPath(System.IO.Path.IsPathRooted(loc) ? loc : System.IO.Path.Combine(folder, loc));
    }

    private static bool IsWindowsAbsolute(string p) =>
        (p.Length >= 3 && char.IsAsciiLetter(p[0]) && p[1] == ':' && (p[2] == '\\' || p[2] == '/')) || p.StartsWith(@"\\", StringComparison.Ordinal);

    /// <summary>Absolute path of the registry file.</summary>
    public string RegistryPath { get; }

    /// <summary>Every HardDisk element, parents before their children, in file order.</summary>
    public IReadOnlyList<MediumEntry> HardDisks => _hardDisks;

    /// <inheritdoc />
    public string Description => $"VirtualBox registry {RegistryPath}";

    /// <inheritdoc />
    public IEnumerable<string> FindCandidates(Guid parentId) =>
        _hardDisks.Where(d => d.Uuid == parentId).Select(d => d.FullPath).ToList();
}
