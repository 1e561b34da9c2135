using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>vms/g.qcow2 &lt;- big/t.qcow2, named vms/t.qcow2 through a symbolic link: a merged layer reached through a link.</summary>
internal static class LinkedTop
{
    public static (string G, string Real, string Link) Make(TempDirectory dir)
    {
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        string g = Path.Combine(vms, "g.qcow2"), real = Path.Combine(big, "t.qcow2"), link = Path.Combine(vms, "t.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", g, "8M");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", g, "-F", "qcow2", real);
        File.CreateSymbolicLink(link, "../big/t.qcow2");
        return (g, real, link);
    }
}
