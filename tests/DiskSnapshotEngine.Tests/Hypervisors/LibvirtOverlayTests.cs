using System.Text.Json;
using System.Xml.Linq;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>
/// <c>dse vm register libvirt</c> with qcow2: a golden VDI or raw image gets a per-domain qcow2 overlay that QEMU runs
/// by itself (no server), and an existing qcow2 chain is a file disk with its backing chain spelled out. Checked with the
/// real qemu-img and qemu-io (QEMU follows the overlay's backing file and writes only the overlay) and the real virsh
/// (test driver), which must accept and keep the backing chain.
/// </summary>
public class LibvirtOverlayTests
{
    private static string Golden(TempDirectory dir, string name)
    {
        string path = dir.File(name);
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(16 << 20)))
        using (var chain = new DiskChain([layer]))
            chain.Write(0, RandomData.Bytes(4 << 20, 7));
        return path;
    }

    private static XElement DiskOf(string domainXml) =>
        XDocument.Parse(domainXml[domainXml.IndexOf("<domain", StringComparison.Ordinal)..(domainXml.IndexOf("</domain>", StringComparison.Ordinal) + 9)])
            .Descendants("disk").Single();

    [RequiresToolFact("qemu-img", "qemu-io", "virsh")]
    public async Task A_golden_VDI_gets_a_qcow2_overlay_that_QEMU_runs_and_writes_while_the_golden_stays_unchanged()
    {
        using var dir = new TempDirectory("libvirt-overlay");
        string golden = Golden(dir, "golden.vdi");
        // The overlay seals the golden (one mark, no content); sealed first, its file must not change at all after.
        DiskImage.Seal(golden);
        string goldenHash = ContentHash.OfFile(golden);
        Directory.CreateDirectory(dir.File("vms"));
        string overlay = dir.File("vms/lab1.qcow2");

        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab1", "--disk", golden, "--overlay", overlay, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.False(File.Exists(overlay), "a dry run creates nothing");
        Assert.Contains("dse create", dry.StdErr);
        var disk = DiskOf(dry.StdOut);
        Assert.Equal("file", (string?)disk.Attribute("type"));
        Assert.Equal("qcow2", (string?)disk.Element("driver")!.Attribute("type"));
        Assert.Equal(overlay, (string?)disk.Element("source")!.Attribute("file"));
        var backing = disk.Element("backingStore")!;
        Assert.Equal("vdi", (string?)backing.Element("format")!.Attribute("type"));
        Assert.Equal(golden, (string?)backing.Element("source")!.Attribute("file"));
        Assert.False(backing.Element("backingStore")!.HasElements);

        // virsh (test driver) accepts the domain and keeps the chain as written.
        string xmlFile = dir.File("lab1.xml");
        File.WriteAllText(xmlFile, dry.StdOut[..(dry.StdOut.IndexOf("</domain>", StringComparison.Ordinal) + 9)]);
        var dumped = DiskOf(ExternalTool.RunChecked("virsh", "-c", "test:///default", $"define {xmlFile}; dumpxml lab1"));
        Assert.Equal("vdi", (string?)dumped.Element("backingStore")!.Element("format")!.Attribute("type"));

        var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab1", "--disk", golden, "--overlay", overlay, "--connect", "test:///default");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"created {overlay}", r.StdOut);
        Assert.DoesNotContain("[Service]", r.StdOut);

        // QEMU opens the overlay by itself, follows it to the VDI, and writes only the overlay.
        var info = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", overlay)).RootElement;
        Assert.Equal("vdi", info.GetProperty("backing-filename-format").GetString());
        ExternalTool.RunChecked("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", overlay);
        ExternalTool.RunChecked("qemu-img", "check", overlay);
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));

        var expected = RandomData.Bytes(4 << 20, 7);
        expected.AsSpan(1 << 20, 64 << 10).Fill(0x5a);
        using var chain = DiskImage.Open(overlay);
        var got = new byte[4 << 20];
        chain.Read(0, got);
        Assert.Equal(ContentHash.Of(expected), ContentHash.Of(got));
    }

    [RequiresToolFact("virsh")]
    public async Task A_qcow2_chain_over_raw_is_a_file_disk_with_each_backing_layer_and_its_format()
    {
        using var dir = new TempDirectory("libvirt-overlay");
        string raw = Golden(dir, "base.img");
        string mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2");
        Assert.Equal(0, (await CliRunner.RunAsync("create", mid, "--parent", raw)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("create", top, "--parent", mid)).ExitCode);

        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "chain", "--disk", top, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        var disk = DiskOf(dry.StdOut);
        Assert.Equal("file", (string?)disk.Attribute("type"));
        var layers = new List<(string? Format, string? File)>();
        for (var b = disk.Element("backingStore"); b is not null && b.HasElements; b = b.Element("backingStore"))
            layers.Add(((string?)b.Element("format")!.Attribute("type"), (string?)b.Element("source")!.Attribute("file")));
        Assert.Equal([("qcow2", mid), ("raw", raw)], layers);
        Assert.DoesNotContain("[Service]", dry.StdOut);
    }

    [Fact]
    public async Task A_qcow2_over_a_VHDX_is_served_over_nbd_since_libvirt_knows_no_vhdx()
    {
        using var dir = new TempDirectory("libvirt-overlay");
        string vhdx = Golden(dir, "golden.vhdx");
        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "v", "--disk", vhdx, "--overlay", dir.File("v.qcow2"), "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Equal("network", (string?)DiskOf(dry.StdOut).Attribute("type"));
        Assert.Contains("[Service]", dry.StdOut);
    }

    [RequiresToolFact("virsh")]
    public async Task A_refused_registration_leaves_no_overlay_and_bad_overlay_paths_are_refused_first()
    {
        using var dir = new TempDirectory("libvirt-overlay");
        string golden = Golden(dir, "golden.vdi");
        string overlay = dir.File("lab.qcow2");
        // A connection virsh cannot open: define fails after the overlay was made, which must then go.
        var failed = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "x", "--disk", golden, "--overlay", overlay,
            "--connect", "test:///" + dir.File("no-such-driver-file.xml"));
        Assert.Equal(ExitCodes.ForKind(ErrorKind.ExternalTool), failed.ExitCode);
        Assert.False(File.Exists(overlay));

        var wrongName = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "x", "--disk", golden, "--overlay", dir.File("lab.vhdx"), "--dry-run");
        Assert.Equal(ExitCodes.ForKind(ErrorKind.InvalidArgument), wrongName.ExitCode);
        File.WriteAllText(overlay, "mine");
        var exists = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "x", "--disk", golden, "--overlay", overlay, "--dry-run");
        Assert.Equal(ExitCodes.ForKind(ErrorKind.AlreadyExists), exists.ExitCode);
        Assert.Equal("mine", File.ReadAllText(overlay));
    }

    [Fact]
    public async Task VirtualBox_refuses_a_qcow2_child_by_name_instead_of_failing_inside()
    {
        using var dir = new TempDirectory("libvirt-overlay");
        string golden = Golden(dir, "golden.vdi");
        string child = dir.File("child.qcow2");
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", golden)).ExitCode);
        var r = await CliRunner.RunAsync("vm", "register", "virtualbox", "--name", "x", "--disk", child, "--dry-run");
        Assert.Equal(ExitCodes.ForKind(ErrorKind.Unsupported), r.ExitCode);
        Assert.Contains("qcow2", r.StdErr);
    }

    /// <summary>
    /// A golden image serves several VMs: registering the second VM's overlay while QEMU runs the first must not need a
    /// write to the golden (QEMU locks its backing file against writers). The first overlay seals the golden with no
    /// clone recorded as its only one, so the second overlay leaves it untouched.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io", "virsh")]
    public async Task A_second_VMs_overlay_is_made_while_QEMU_runs_the_first_and_the_golden_is_not_written()
    {
        using var dir = new TempDirectory("libvirt-overlay-two");
        string golden = Golden(dir, "golden.vdi");
        string first = dir.File("lab1.qcow2"), second = dir.File("lab2.qcow2");
        var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab1", "--disk", golden, "--overlay", first, "--connect", "test:///default");
        Assert.True(r.ExitCode == 0, r.ToString());
        var info = JsonDocument.Parse((await CliRunner.RunAsync("info", golden, "--json")).StdOut).RootElement;
        Assert.True(info.GetProperty("sealed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, info.GetProperty("soleChild").ValueKind);
        string goldenHash = ContentHash.OfFile(golden);

        using (QemuHolder.Start(first, "qcow2"))
        {
            r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "lab2", "--disk", golden, "--overlay", second, "--connect", "test:///default");
            Assert.True(r.ExitCode == 0, r.ToString());
        }
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        ExternalTool.RunChecked("qemu-img", "check", second);
        // Neither overlay can be merged into the golden without the user's word.
        Assert.Equal(15, (await CliRunner.RunAsync("merge", first)).ExitCode);
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
    }

    /// <summary>
    /// A golden on a read-only file system is already immutable: the overlay is made without writing the seal, with the
    /// note a linked clone gives (<c>clone --linked</c>), and QEMU reads the golden through it unchanged. VHDX goes
    /// through the NBD path; a golden sealed with its sole clone recorded says that record could not be updated.
    /// </summary>
    [RequiresLoopMountFact("qemu-img", "virsh")]
    public async Task A_golden_on_a_read_only_mount_gets_its_overlay_unsealed_with_the_note_and_is_not_written()
    {
        using var fs = LoopFileSystem.Create(64, "mkfs.ext4", "-q", "-F");
        using var dir = new TempDirectory("libvirt-overlay-ro");
        string input = dir.File("data.bin");
        File.WriteAllBytes(input, RandomData.Bytes(300_000, 8));
        var formats = new[] { "vdi", "qcow2", "vhdx" };
        var before = await ReadOnlyGoldens.MakeAsync(fs, input, "vdi", formats);

        string sealedGolden = fs.File("sealed.vdi");
        foreach (var (golden, note) in formats.Select(e => fs.File($"golden.{e}")).Select(g => (g, $"{g} was not sealed (the file system is read-only)"))
            .Append((sealedGolden, $"{sealedGolden}'s seal still records another linked clone as its only one (the file system is read-only")))
        {
            string name = Path.GetFileNameWithoutExtension(golden) + Path.GetExtension(golden)[1..], overlay = dir.File($"{name}.qcow2");
            var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", name, "--disk", golden, "--overlay", overlay,
                "--connect", "test:///default", "--json");
            Assert.True(r.ExitCode == 0, $"{golden}: {r}");
            using (var doc = JsonDocument.Parse(r.StdOut))
                Assert.Equal(overlay, doc.RootElement.GetProperty("overlay").GetString());
            using (var doc = JsonDocument.Parse(Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries))))
                Assert.Contains(note, doc.RootElement.GetProperty("note").GetProperty("message").GetString());

            // QEMU's own view: a qcow2 backed by the golden, in its format, reading as the golden.
            var info = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", overlay)).RootElement;
            Assert.Equal("qcow2", info.GetProperty("format").GetString());
            string backingFile = info.GetProperty("backing-filename").GetString()!; // relative to the overlay's folder
            Assert.Equal(golden, Path.GetFullPath(Path.Combine(Path.GetDirectoryName(overlay)!, backingFile)));
            Assert.Equal(Path.GetExtension(golden)[1..], info.GetProperty("backing-filename-format").GetString());
            ExternalTool.RunChecked("qemu-img", "compare", overlay, golden);
            ExternalTool.RunChecked("qemu-img", "check", overlay);
        }
        Assert.False((await CliRunner.InfoAsync(fs.File("golden.vdi"))).GetProperty("sealed").GetBoolean());
        ReadOnlyGoldens.AssertUnchanged(before);
    }
}
