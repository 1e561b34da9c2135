using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>What a libvirt registration did.</summary>
/// <param name="DomainXml">The domain definition.</param>
/// <param name="Command">The virsh command (run, or to run after saving the XML).</param>
/// <param name="Defined">True when virsh define succeeded.</param>
public sealed record LibvirtRegistration(string DomainXml, ExternalCommand Command, bool Defined);

/// <summary>Defines a libvirt domain for a disk with <c>virsh define</c>.</summary>
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
    /// Builds the domain XML and, unless <paramref name="dryRun"/>, defines it. define is a single libvirt step: it
    /// either creates the domain or leaves nothing, so there is nothing to roll back.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument; Unsupported (differencing image, or a libvirt that does not know the vhdx format); ExternalTool (virsh missing or failed).</exception>
    public LibvirtRegistration Register(LibvirtDomainSpec spec, VmDiskState state, string? connectUri, bool dryRun)
    {
        var xml = LibvirtDomainXml.Build(spec, state).ToString(SaveOptions.None);
        var display = DefineCommand(spec.Name + ".xml", connectUri);
        if (dryRun) return new LibvirtRegistration(xml, display, false);
        if (!_runner.IsAvailable(Program))
            throw new DiskImageException(ErrorKind.ExternalTool,
                $"virsh is not on the PATH (apt-get install libvirt-clients); save the XML with --dry-run and run: {display}");

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
                if (why.Contains("unknown driver format value", StringComparison.Ordinal))
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
