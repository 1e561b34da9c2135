using System.Text;
using System.Text.Json;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats;

/// <summary>
/// Every format records its parent by the same rule (<see cref="ParentPath"/>): relative to the child's folder on one
/// file system, absolute only when the parent is on another (a relative path across a mount point breaks as soon as
/// either side is mounted elsewhere). The parent here is on a tmpfs, the child on the test's file system.
/// </summary>
public class ParentPathTests
{
    [RequiresMountTheory]
    [InlineData("qcow2")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("vhd")]
    public async Task A_parent_on_another_file_system_is_recorded_by_its_absolute_path_only(string ext)
    {
        using var fs = SmallFileSystem.TryMount(16)!;
        using var dir = new TempDirectory("parent-path");
        string golden = fs.File(GoldenName(ext));
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        string child = dir.File($"vms/a/child.{ext}");
        Directory.CreateDirectory(Path.GetDirectoryName(child)!);
        await CliRunner.OkAsync("create", child, "--parent", golden);

        Assert.Null(ParentPath.Relative(child, golden));
        Assert.Equal(new Recorded(Relative: null, Absolute: ext == "qcow2" ? golden : null), Read(child, ext));
        // The child's tree moves (or is mounted elsewhere): the absolute path still names the parent.
        string moved = dir.File($"deeper/still/vms");
        Directory.CreateDirectory(Path.GetDirectoryName(moved)!);
        Directory.Move(dir.File("vms"), moved);
        string movedChild = Path.Combine(moved, "a", $"child.{ext}");
        var info = await CliRunner.InfoAsync(movedChild);
        Assert.Equal(golden, info.GetProperty("parent").GetProperty("image").GetString());
        if (ext == "qcow2") ExternalTool.RunChecked("qemu-img", "info", "--backing-chain", movedChild);
    }

    [Theory]
    [InlineData("qcow2")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("vhd")]
    public async Task A_parent_on_the_same_file_system_is_recorded_relative_to_the_child(string ext)
    {
        using var dir = new TempDirectory("parent-path");
        Directory.CreateDirectory(dir.File("golden"));
        Directory.CreateDirectory(dir.File("vms"));
        string golden = dir.File("golden/" + GoldenName(ext));
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        string child = dir.File($"vms/child.{ext}");
        await CliRunner.OkAsync("create", child, "--parent", golden);

        string relative = "../golden/" + GoldenName(ext);
        Assert.Equal(relative, ParentPath.Relative(child, golden));
        Assert.Equal(ext is "vhdx" or "vhd" ? relative.Replace('/', '\\') : relative, Read(child, ext).Relative);
    }

    // A differencing VHD's parent must be a VHD; every other format takes a VHDX.
    private static string GoldenName(string ext) => ext == "vhd" ? "golden.vhd" : "golden.vhdx";

    /// <summary>The relative path the child records, and (qcow2, whose one backing name is either) the absolute one.</summary>
    private sealed record Recorded(string? Relative, string? Absolute);

    private static Recorded Read(string child, string ext)
    {
        byte[] file = File.ReadAllBytes(child);
        switch (ext)
        {
            case "qcow2":
            {
                var json = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", child)).RootElement;
                string name = json.GetProperty("backing-filename").GetString()!;
                return Path.IsPathRooted(name) ? new Recorded(null, name) : new Recorded(name, null);
            }
            case "vdi":
            {
                // dse's VDI parent record: relative length at 524, then (after the 16-byte head) the relative path.
                int length = BitConverter.ToUInt16(file, 524);
                return new Recorded(length == 0 ? null : Encoding.UTF8.GetString(file, 528, length), null);
            }
            case "vhdx":
                return new Recorded(VhdxRelativePath(file, child), null);
            default:
                // A VHD W2ru locator (platform code "W2ru" in the dynamic header's locator table) holds the relative path.
                return new Recorded(FindW2ru(file), null);
        }
    }

    private static string? VhdxRelativePath(byte[] file, string child)
    {
        // The parent locator item starts with its type GUID (MS-VHDX 2.6.2.6), which no other structure holds.
        var type = DiskSnapshotEngine.Formats.Vhdx.VhdxConstants.VhdxParentLocatorType.ToByteArray();
        int at = file.AsSpan().IndexOf(type);
        Assert.True(at >= 0, "no parent locator");
        return DiskSnapshotEngine.Formats.Vhdx.VhdxParentLocator.Parse(file.AsSpan(at), child, at)["relative_path"];
    }

    private static string? FindW2ru(byte[] file)
    {
        // Dynamic header at 512; its 8 parent locator entries (24 bytes each) start at 512 + 576.
        for (int i = 0; i < 8; i++)
        {
            int e = 512 + 576 + i * 24;
            if (Encoding.ASCII.GetString(file, e, 4) != "W2ru") continue;
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(file.AsSpan(e + 8));
            long offset = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(file.AsSpan(e + 16));
            return Encoding.Unicode.GetString(file, (int)offset, length);
        }
        return null;
    }
}
