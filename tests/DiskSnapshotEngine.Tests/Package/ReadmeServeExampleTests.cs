using System.Text.Json;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Nbd;

namespace DiskSnapshotEngine.Tests.Package;

/// <summary>
/// The qemu-img command README.md shows beside <c>dse serve</c> (section "Serving a chain over NBD"), run as written
/// against a served chain: the file it names <c>out.qcow2</c> must be a qcow2 image, not a raw one.
/// </summary>
public sealed class ReadmeServeExampleTests
{
    [RequiresToolFact("qemu-img")]
    public void The_readme_qemu_img_convert_example_writes_a_qcow2()
    {
        string root = RepositoryFixtures.RepositoryRoot ?? throw new InvalidOperationException("the tests do not run inside a checkout");
        string line = File.ReadAllLines(Path.Combine(root, "README.md")).Single(l => l.StartsWith("qemu-system-x86_64", StringComparison.Ordinal));
        string command = line[(line.IndexOf("# or: ", StringComparison.Ordinal) + "# or: ".Length)..].Trim();
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("qemu-img", words[0]);

        using var dir = new TempDirectory("readme-serve");
        string image = dir.File("clone.vhdx"), socket = dir.File("clone.sock"), output = dir.File("out.qcow2");
        DiskImage.Create(image, 4L << 20).Dispose();
        using var served = new ServedImage(image, socket, writable: false);
        var args = words.Skip(1).Select(w => w.Replace("/run/clone.sock", socket, StringComparison.Ordinal))
            .Select(w => w == "out.qcow2" ? output : w).ToArray();
        ExternalTool.RunChecked("qemu-img", args);
        var info = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", output)).RootElement;
        Assert.Equal("qcow2", info.GetProperty("format").GetString());
    }
}
