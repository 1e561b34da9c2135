using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>How the registrar runs <c>dse serve</c> for a domain.</summary>
/// <param name="DseCommand">The dse program as an argument vector (an absolute path first: the dse executable, or dotnet and dse.dll).</param>
/// <param name="ServeOptions">Options passed on to <c>dse serve</c> (how the chain's parents are found).</param>
/// <param name="UnitDirectory">Where to write the unit file; null to hand its text back only.</param>
/// <param name="SocketGroup">A group given access to the socket (QEMU's, e.g. libvirt-qemu or kvm); null for root only.</param>
public sealed record LibvirtNbdOptions(IReadOnlyList<string> DseCommand, IReadOnlyList<string> ServeOptions, string? UnitDirectory = null, string? SocketGroup = null);

/// <summary>
/// A disk QEMU cannot open by itself (a differencing VHDX, VDI or VHD: QEMU follows only qcow2 backing links; any
/// chain with a VHDX: libvirt 9 has no vhdx format) handed to the domain as an NBD network disk: a systemd unit runs
/// <c>dse serve</c> on a unix socket in its own runtime directory, and the domain names that socket.
/// </summary>
/// <param name="UnitName">The unit's file name (dse-nbd-NAME.service, NAME escaped as systemd-escape does).</param>
/// <param name="SocketPath">The unix socket, under /run (the unit's RuntimeDirectory, so systemd makes and removes it).</param>
/// <param name="Serve">The command the unit runs.</param>
/// <param name="UnitText">The unit file.</param>
public sealed record LibvirtNbdService(string UnitName, string SocketPath, ExternalCommand Serve, string UnitText)
{
    /// <summary>The directory under /run holding every domain's socket directory.</summary>
    public const string RuntimeRoot = "dse-nbd";

    /// <summary>True when QEMU cannot open the current image of <paramref name="state"/> as a file, so it must go over NBD.</summary>
    public static bool IsNeeded(VmDiskState state) => !LibvirtDomainXml.OpensAsFiles(state);

    /// <summary>The service that serves <paramref name="disk"/> for domain <paramref name="spec"/>.</summary>
    /// <exception cref="DiskImageException">InvalidArgument when the dse program path cannot be run by systemd or the group name is unusable.</exception>
    public static LibvirtNbdService For(LibvirtDomainSpec spec, MediumInfo disk, LibvirtNbdOptions options)
    {
        // The UUID keeps the path short (a socket path holds 107 bytes) and free of the name's characters.
        string runtime = $"{RuntimeRoot}/{spec.Uuid:D}";
        string socket = $"/run/{runtime}/disk.sock";
        var args = new List<string>(options.DseCommand.Skip(1)) { "serve", disk.Path, "--socket", socket };
        // A golden disk refuses every writer, dse serve included: it is served read-only, as the domain attaches it.
        if (disk.IsGolden) args.Add("--read-only");
        args.AddRange(options.ServeOptions);
        var serve = new ExternalCommand(options.DseCommand[0], args);
        string unitName = $"dse-nbd-{SystemdUnit.EscapeName(spec.Name)}.service";
        if (options.SocketGroup is { } g && (g.Length == 0 || !g.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.')))
            throw new DiskImageException(ErrorKind.InvalidArgument, $"'{g}' is not a usable group name");

        var unit = new StringBuilder()
            .AppendLine($"# {unitName}: written by dse vm register libvirt for domain {SystemdUnit.Text(spec.Name)} ({spec.Uuid:D}).")
            .AppendLine("# Start it before the domain: " + EnableCommand(unitName))
            .AppendLine("[Unit]")
            .AppendLine($"Description={SystemdUnit.Text($"NBD export of {disk.Path} for libvirt domain {spec.Name} (dse serve)")}")
            .AppendLine("After=local-fs.target")
            .AppendLine("Before=libvirt-guests.service")
            .AppendLine()
            .AppendLine("[Service]")
            .AppendLine("Type=simple")
            .AppendLine($"ExecStart={SystemdUnit.ExecLine([serve.Program, .. serve.Arguments])}")
            .AppendLine($"RuntimeDirectory={runtime}")
            .AppendLine("RuntimeDirectoryMode=0755")
            // The socket takes the process's group: QEMU, in that group, may connect; nobody else may.
            .AppendLine("UMask=0007");
        if (options.SocketGroup is { } group) unit.AppendLine($"Group={group}");
        unit.AppendLine("Restart=on-failure")
            // dse serve stops on SIGTERM after its clients' requests finish and the image is flushed.
            .AppendLine("TimeoutStopSec=60")
            .AppendLine()
            .AppendLine("[Install]")
            .AppendLine("WantedBy=multi-user.target");
        return new LibvirtNbdService(unitName, socket, serve, unit.ToString());
    }

    /// <summary>The shell commands that load and start the unit (its name quoted: escaped names hold backslashes).</summary>
    public string EnableCommand() => EnableCommand(UnitName);

    /// <summary>
    /// As <see cref="EnableCommand()"/> for the unit saved as <paramref name="unitFile"/>: one in a folder systemd does
    /// not read (a --unit-dir elsewhere) is enabled by its path, which links it into systemd's search path.
    /// </summary>
    public string EnableCommandFor(string unitFile) =>
        s_systemUnitFolders.Contains(Path.GetDirectoryName(Path.GetFullPath(unitFile)))
            ? EnableCommand()
            : $"systemctl enable --now {ExternalCommand.ShellQuote(Path.GetFullPath(unitFile))}";

    // The system unit folders systemd reads by itself (systemd.unit(5), system unit search path).
    private static readonly HashSet<string?> s_systemUnitFolders = new(StringComparer.Ordinal)
    {
        "/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system",
    };

    private static string EnableCommand(string unitName) =>
        $"systemctl daemon-reload && systemctl enable --now {ExternalCommand.ShellQuote(unitName)}";
}
