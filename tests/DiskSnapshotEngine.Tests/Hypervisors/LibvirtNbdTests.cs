using System.Diagnostics;
using System.Text;
using System.Xml.Linq;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Nbd;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>
/// <c>dse vm register libvirt</c> for disks QEMU cannot open itself: the domain gets an NBD network disk on a unix socket,
/// and a systemd unit runs <c>dse serve</c> on it. The real virsh (test driver) must accept the domain, the real systemd
/// parser must read the unit's ExecStart back as the same argument vector, and that vector must serve the disk.
/// </summary>
public class LibvirtNbdTests
{
    // Quotes, a percent sign, a dollar and non-ASCII: each one a systemd or shell quoting trap.
    private const string Awkward = "Zoë's \"lab\" 100% $HOME disks";

    private static (string Base, string Child) DifferencingVhdx(TempDirectory dir)
    {
        string folder = System.IO.Path.Combine(dir.Path, Awkward);
        Directory.CreateDirectory(folder);
        string parent = System.IO.Path.Combine(folder, "base disk.vhdx"), child = System.IO.Path.Combine(folder, "child disk.vhdx");
        using (var p = DiskImage.Create(parent, new DiskSnapshotEngine.Formats.ImageCreateOptions(64 << 20)))
        using (var c = new DiskSnapshotEngine.Block.DiskChain([p])) c.Write(1 << 20, RandomData.Bytes(100_000, 1));
        DiskImage.CreateDifferencing(child, parent).Dispose();
        return (parent, child);
    }

    /// <summary>The XML and the unit a dry run prints, one after the other.</summary>
    private static (XDocument Xml, string Unit) SplitDryRun(string stdout)
    {
        int end = stdout.IndexOf("</domain>", StringComparison.Ordinal) + "</domain>".Length;
        return (XDocument.Parse(stdout[..end]), stdout[end..].TrimStart());
    }

    [RequiresToolFact("virsh")]
    public async Task A_differencing_VHDX_becomes_an_nbd_disk_that_virsh_defines_and_the_unit_serves_its_socket()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        var (_, child) = DifferencingVhdx(dir);
        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab 'vm'", "--disk", child, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        var (xml, unit) = SplitDryRun(dry.StdOut);
        string uuid = xml.Root!.Element("uuid")!.Value;
        string socket = $"/run/dse-nbd/{uuid}/disk.sock";
        Assert.Contains($"ExecStart=", unit);
        Assert.Contains($"\"--socket\" \"{socket}\"", unit);
        Assert.Contains("systemctl daemon-reload && systemctl enable --now 'dse-nbd-lab\\x20\\x27vm\\x27.service'", dry.StdErr);

        var xmlFile = dir.File("domain.xml");
        xml.Save(xmlFile);
        var output = ExternalTool.RunChecked("virsh", "-c", "test:///default", $"define {xmlFile}; dumpxml {uuid}");
        var disk = XDocument.Parse(output[output.IndexOf("<domain", StringComparison.Ordinal)..]).Descendants("disk").Single();
        Assert.Equal("network", (string?)disk.Attribute("type"));
        Assert.Equal("raw", (string?)disk.Element("driver")!.Attribute("type"));
        var source = disk.Element("source")!;
        Assert.Equal("nbd", (string?)source.Attribute("protocol"));
        Assert.Equal("unix", (string?)source.Element("host")!.Attribute("transport"));
        Assert.Equal(socket, (string?)source.Element("host")!.Attribute("socket"));

        // For real (test driver): the unit is written, the domain defined.
        using var units = new TempDirectory("units");
        var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab 'vm'", "--disk", child, "--connect", "test:///default", "--unit-dir", units.Path);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("defined libvirt domain 'lab 'vm''", r.StdOut);
        string unitFile = units.File("dse-nbd-lab\\x20\\x27vm\\x27.service");
        Assert.Contains($"wrote {unitFile}", r.StdOut);
        Assert.Contains("[Service]", File.ReadAllText(unitFile));
        // A folder systemd does not read: the unit is enabled by its path (which links it in), not by its name.
        Assert.Contains($"run systemctl enable --now '{unitFile}' before starting the domain", r.StdErr);

        // The same unit name again: refused, and the existing file kept.
        var again = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab 'vm'", "--disk", child, "--connect", "test:///default", "--unit-dir", units.Path);
        Assert.Equal(ExitCodes.ForKind(ErrorKind.AlreadyExists), again.ExitCode);
        Assert.True(File.Exists(unitFile));
    }

    [Fact]
    public async Task A_flat_VHDX_goes_over_nbd_too_and_a_raw_disk_stays_a_file()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        string vhdx = dir.File("flat.vhdx"), raw = dir.File("flat.img");
        DiskImage.Create(vhdx, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        DiskImage.Create(raw, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        var v = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "v", "--disk", vhdx, "--dry-run");
        Assert.Equal("network", (string?)SplitDryRun(v.StdOut).Xml.Descendants("disk").Single().Attribute("type"));
        var f = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "f", "--disk", raw, "--dry-run");
        Assert.Equal(raw, (string?)XDocument.Parse(f.StdOut).Descendants("source").Single().Attribute("file"));
        Assert.DoesNotContain("[Service]", f.StdOut);
    }

    /// <summary>A dry run with --unit-dir says to save the unit there (not in /etc/systemd/system), shell-quoted.</summary>
    [Fact]
    public async Task A_dry_run_names_the_unit_dir_it_was_given()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        var (_, child) = DifferencingVhdx(dir);
        string units = dir.File("unit dir");
        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "a&b", "--disk", child, "--dry-run", "--unit-dir", units);
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains($"save the unit as '{units}/dse-nbd-a\\x26b.service' and run: systemctl enable --now '{units}/dse-nbd-a\\x26b.service'", dry.StdErr);
        Assert.False(Directory.Exists(units));
    }

    [Fact]
    public async Task A_golden_VHDX_is_served_read_only_and_attached_read_only()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        string golden = dir.File("golden.vhdx");
        DiskImage.Create(golden, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        Assert.Equal(0, (await CliRunner.RunAsync("seal", golden)).ExitCode);
        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "g", "--disk", golden, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        var (xml, unit) = SplitDryRun(dry.StdOut);
        Assert.NotNull(xml.Descendants("disk").Single().Element("readonly"));
        Assert.Contains("\"--read-only\"", unit);
        // What the unit runs works on the sealed disk; a writer would be refused by the seal.
        using (var served = new ServedImage(golden, dir.File("g.sock"), writable: false)) Assert.Equal(8 << 20, served.Chain.VirtualSize);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(golden, OpenOptions.ReadWrite).Dispose());
        Assert.Equal(ErrorKind.ReadOnly, e.Kind);
    }

    [Fact]
    public void A_failed_define_leaves_no_unit_behind()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        var child = new MediumInfo(Guid.NewGuid(), "/vms/child.vhdx", MediumFormats.Vhdx, 1 << 20, Array.Empty<MediumInfo>());
        var root = new MediumInfo(Guid.NewGuid(), "/vms/base.vhdx", MediumFormats.Vhdx, 1 << 20, new[] { child });
        var state = new VmDiskState(root, child.Id, Array.Empty<SnapshotInfo>(), null);
        var runner = new FakeCommandRunner(new[] { "virsh" }, _ => new CommandResult(1, "", "error: operation failed"));
        var nbd = new LibvirtNbdOptions(["/usr/bin/dse"], Array.Empty<string>(), dir.Path);
        var e = Assert.Throws<DiskImageException>(() => new LibvirtRegistrar(runner).Register(new LibvirtDomainSpec("x"), state, null, dryRun: false, nbd));
        Assert.Equal(ErrorKind.ExternalTool, e.Kind);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Unit_names_and_exec_words_follow_the_systemd_escaping_rules()
    {
        Assert.Equal("lab\\x20\\x27vm\\x27", SystemdUnit.EscapeName("lab 'vm'"));
        Assert.Equal("a-b\\x2dc", SystemdUnit.EscapeName("a/b-c"));
        Assert.Equal("\\x2ehidden.x", SystemdUnit.EscapeName(".hidden.x"));
        Assert.Equal("Zo\\xc3\\xab", SystemdUnit.EscapeName("Zoë"));
        Assert.Equal("\"a \\\"b\\\" \\\\ 100%% $$HOME\\x0a\"", SystemdUnit.Quote("a \"b\" \\ 100% $HOME\n"));
        var bad = Assert.Throws<DiskImageException>(() => SystemdUnit.ExecLine(["/opt/it's/dse", "serve"]));
        Assert.Equal(ErrorKind.InvalidArgument, bad.Kind);
        Assert.Throws<DiskImageException>(() => SystemdUnit.ExecLine(["dse", "serve"]));
    }

    /// <summary>
    /// systemd's own parser (systemd-analyze verify, which dumps the command line it read) gets back exactly the
    /// argument vector, and that vector, run as a process, serves the disk on the socket the domain names.
    /// </summary>
    [RequiresToolFact("systemd-analyze", "qemu-img")]
    public async Task Systemd_reads_the_unit_back_as_the_argument_vector_and_that_vector_serves_the_disk()
    {
        using var dir = new TempDirectory("libvirt-nbd");
        var (_, child) = DifferencingVhdx(dir);
        using var units = new TempDirectory("units");
        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "svc", "--disk", child, "--dry-run", "--search-path", dir.Path);
        var (xml, unit) = SplitDryRun(dry.StdOut);
        string unitFile = units.File("dse-nbd-svc.service");
        File.WriteAllText(unitFile, unit);

        var (code, stdout, stderr) = ExternalTool.Run("env", "SYSTEMD_LOG_LEVEL=debug", "systemd-analyze", "verify", unitFile);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("Ignoring", stderr);
        var line = (stdout + stderr).Split('\n').Single(l => l.TrimStart().StartsWith("Command Line:", StringComparison.Ordinal));
        var parsed = SystemdDumpWords(line.Split("Command Line:", 2)[1].Trim());

        string socket = (string)xml.Descendants("host").Single().Attribute("socket")!;
        var argv = parsed.Select(a => a.Replace("$$", "$", StringComparison.Ordinal)).ToList(); // systemd expands $$ when it starts the program
        Assert.Equal(["serve", child, "--socket", socket, "--search-path", dir.Path], argv.SkipWhile(a => a != "serve"));
        Assert.Contains(parsed, a => a.Contains("$$HOME", StringComparison.Ordinal)); // a literal $ survives as $$ until exec

        // Run that vector. The unit's RuntimeDirectory makes the socket's folder; here the test makes it.
        string runtime = System.IO.Path.GetDirectoryName(socket)!;
        Directory.CreateDirectory(runtime);
        try
        {
            var psi = new ProcessStartInfo(argv[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in argv.Skip(1)) psi.ArgumentList.Add(a);
            using var serve = Process.Start(psi)!;
            var first = await serve.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Contains($"at nbd+unix:///?socket={socket}", first);
            var info = ExternalTool.RunChecked("qemu-img", "info", "-f", "raw", $"nbd+unix:///?socket={socket}");
            Assert.Contains("virtual size: 64 MiB", info);
            ExternalTool.RunChecked("kill", "-TERM", serve.Id.ToString());
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await serve.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, serve.ExitCode);
        }
        finally
        {
            Directory.Delete(runtime, recursive: true);
        }
    }

    /// <summary>Words of the command line systemd dumps: bare, or double-quoted with backslash escapes.</summary>
    private static List<string> SystemdDumpWords(string line)
    {
        var words = new List<string>();
        int i = 0;
        while (i < line.Length)
        {
            if (line[i] == ' ') { i++; continue; }
            var w = new StringBuilder();
            if (line[i] == '"')
            {
                for (i++; line[i] != '"'; i++)
                {
                    if (line[i] == '\\') i++;
                    w.Append(line[i]);
                }
                i++;
            }
            else
            {
                for (; i < line.Length && line[i] != ' '; i++) w.Append(line[i]);
            }
            words.Add(w.ToString());
        }
        return words;
    }
}
