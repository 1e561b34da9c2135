using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>What a libvirt registration did.</summary>
/// <param name="DomainXml">The domain definition.</param>
/// <param name="Command">The virsh command (run, or to run after saving the XML).</param>
/// <param name="Defined">True when virsh define succeeded.</param>
/// <param name="Service">The NBD service the domain's disk needs (differencing or VHDX disks), or null for a file disk.</param>
/// <param name="UnitPath">Where the service's unit file was written, or null when it was not.</param>
public sealed record LibvirtRegistration(string DomainXml, ExternalCommand Command, bool Defined, LibvirtNbdService? Service = null, string? UnitPath = null);

/// <summary>
/// Defines a libvirt domain for a disk with <c>virsh define</c>. A disk QEMU can open (a raw, VDI, VHD or qcow2 base
/// image, or qcow2 overlays over one) is a file source with its backing chain spelled out; any other (a VHDX, VDI or
/// VHD differencing chain, anything with a VHDX) is an NBD source served by <c>dse serve</c> under systemd.
/// </summary>
public sealed class LibvirtRegistrar
{
    /// <summary>Program name on the PATH.</summary>
    public const string Program = "virsh";

    private readonly ICommandRunner _runner;

    /// <summary>Creates a registrar that starts virsh with <paramref name="runner"/>.</summary>
    public LibvirtRegistrar(ICommandRunner? runner = null) => _runner = runner ?? ProcessCommandRunner.Instance;

    /// <summary><c>virsh [-c URI] define FILE</c>.</summary>
    public static ExternalCommand DefineCommand(string xmlFile, string? connectUri)
    {
        var args = new List<string>();
        if (connectUri is not null) { args.Add("-c"); args.Add(connectUri); }
        args.Add("define");
        args.Add(xmlFile);
        return new ExternalCommand(Program, args);
    }

    /// <summary>
    /// Builds the domain XML (and, for a disk that needs it, the NBD service) and, unless <paramref name="dryRun"/>,
    /// writes the unit file (with <see cref="LibvirtNbdOptions.UnitDirectory"/>) and defines the domain. define is a
    /// single libvirt step: it either creates the domain or leaves nothing; a unit written for it is removed again when
    /// it fails.
    /// </summary>
    /// <param name="spec">The domain.</param>
    /// <param name="state">The disk.</param>
    /// <param name="connectUri">libvirt connection URI, or null for virsh's default.</param>
    /// <param name="dryRun">Build everything, write and define nothing.</param>
    /// <param name="nbd">How to run dse serve; without it a differencing disk is refused (Unsupported).</param>
    /// <exception cref="DiskImageException">InvalidArgument; Unsupported (differencing image without <paramref name="nbd"/>, or a libvirt that does not know the disk's format); AlreadyExists (the unit file exists); ExternalTool (virsh missing or failed); Io.</exception>
    public LibvirtRegistration Register(LibvirtDomainSpec spec, VmDiskState state, string? connectUri, bool dryRun, LibvirtNbdOptions? nbd = null)
    {
        var service = nbd is not null && LibvirtNbdService.IsNeeded(state) ? LibvirtNbdService.For(spec, state.CurrentMedium, nbd) : null;
        var xml = LibvirtDomainXml.Build(spec, state, service?.SocketPath).ToString(SaveOptions.None);
        var display = DefineCommand(spec.Name + ".xml", connectUri);
        if (dryRun) return new LibvirtRegistration(xml, display, false, service);
        if (!_runner.IsAvailable(Program))
            throw new DiskImageException(ErrorKind.ExternalTool,
                $"virsh is not on the PATH (apt-get install libvirt-clients); save the XML with --dry-run and run: {display}");

        string? unitPath = service is not null && nbd!.UnitDirectory is { } dir ? WriteUnit(dir, service) : null;
        try
        {
            return Define(xml, state, connectUri) with { Service = service, UnitPath = unitPath };
        }
        catch
        {
            if (unitPath is not null) Operations.DurableFiles.TryDelete(unitPath);
            throw;
        }
    }

    private static string WriteUnit(string directory, LibvirtNbdService service)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(directory), service.UnitName);
        if (!Directory.Exists(directory))
            throw new DiskImageException(ErrorKind.FileNotFound, "the unit directory does not exist", System.IO.Path.GetFullPath(directory));
        if (File.Exists(path))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the unit file exists; refusing to replace it (remove it, or register under another name)", path);
        Operations.DurableFiles.WriteAllTextAtomic(path, service.UnitText);
        return path;
    }

    private LibvirtRegistration Define(string xml, VmDiskState state, string? connectUri)
    {
        var file = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"dse-domain-{Guid.NewGuid():N}.xml");
        try
        {
            File.WriteAllText(file, xml);
            var command = DefineCommand(file, connectUri);
            var r = _runner.Run(command);
            if (r.ExitCode != 0)
            {
                var why = r.StandardError.Trim().ReplaceLineEndings(" ");
                // libvirt before it learnt the vhdx format rejects the driver type outright; say so instead of a raw parser error.
                if (why.Contains("unknown driver format value", StringComparison.Ordinal) || why.Contains("unknown storage source format", StringComparison.Ordinal))
                    throw new DiskImageException(ErrorKind.Unsupported,
                        $"this libvirt does not accept the disk's format ({why}); convert the disk to raw or qcow2 (qemu-img convert -O qcow2 {ExternalCommand.ShellQuote(state.CurrentMedium.Path)} disk.qcow2) and register that",
                        state.CurrentMedium.Path);
                throw new DiskImageException(ErrorKind.ExternalTool, $"virsh define exited with {r.ExitCode}: {why} (command: {command})");
            }
            return new LibvirtRegistration(xml, command, true);
        }
        catch (IOException e)
        {
            throw new DiskImageException(ErrorKind.Io, $"could not write the domain XML: {e.Message}", file, inner: e);
        }
        finally
        {
            try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
