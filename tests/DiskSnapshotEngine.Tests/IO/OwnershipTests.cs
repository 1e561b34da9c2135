using System.Runtime.InteropServices;
using System.Text;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// A disk owned by the hypervisor's user keeps its owner, group, mode, POSIX ACL and extended attributes (user.* and
/// security.* labels) through every verb that replaces its file or creates one beside it: the new current state of a
/// snapshot, revert or rollback, a compacted file, a merged base renamed over the disk, the snapshot layers and the
/// catalog.
/// </summary>
public class OwnershipTests
{
    private const uint Nobody = 65534, NoGroup = 65534;

    [RootFact("gives the disk to nobody:nogroup")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_disk_keeps_owner_mode_acl_and_attributes_through_every_verb_that_replaces_it()
    {
        foreach (var format in new[] { "vhdx", "vdi", "qcow2", "vhd" })
        foreach (var mode in new[] { UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead })
        {
            using var dir = new TempDirectory("owner");
            string disk = dir.File("d." + format), input = dir.File("in.bin");
            Assert.Equal(0, (await CliRunner.RunAsync("create", disk, "--size", "8M")).ExitCode);
            File.WriteAllBytes(input, Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray());
            Assert.Equal(0, (await CliRunner.RunAsync("write", disk, "--offset", "1M", "--input", input)).ExitCode);
            Give(disk, mode);
            string expected = Access(disk);
            string step = $"{format} {Convert.ToString((int)mode, 8)}";

            async Task Run(string what, params string[] args)
            {
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == 0, $"{step}, {what}: {r}");
                Assert.Equal($"{what}: {expected}", $"{what}: {Access(disk)}");
                foreach (var layer in Directory.GetFiles(dir.Path, "d.snap-*"))
                    Assert.Equal($"{what}, layer: {expected}", $"{what}, layer: {Access(layer)}");
                string catalog = disk + ".snapshots.json";
                if (File.Exists(catalog)) Assert.Equal($"{what}, catalog: {expected}", $"{what}, catalog: {Access(catalog)}");
            }

            await Run("compact", "compact", disk);
            await Run("resize by rewrite", "resize", disk, "--size", "3G"); // past a qcow2's L1 clusters, a VHD always
            if (format != "qcow2") await Run("set-identity", "set-identity", disk, "--new"); // qcow2 has no disk id
            await Run("snapshot create", "snapshot", "create", disk, "--name", "s1");
            Assert.Equal(0, (await CliRunner.RunAsync("write", disk, "--offset", "3M", "--input", input)).ExitCode);
            // s1 is the base with one child, the disk: its delete commits the disk into it and renames it over the disk.
            await Run("snapshot delete", "snapshot", "delete", disk, "--name", "s1");
            await Run("snapshot create", "snapshot", "create", disk, "--name", "s2");
            await Run("snapshot revert", "snapshot", "revert", disk, "--name", "s2");
            await Run("rollback", "rollback", disk);
            await Run("snapshot repair", "snapshot", "repair", disk);
            Assert.Equal(0, (await CliRunner.RunAsync("check", disk)).ExitCode);
        }
    }

    /// <summary>
    /// A disk made private after its first snapshot (chmod 0600: the catalog was written at 0644 beside it): the next
    /// snapshot verb's catalog takes the disk's mode again, as the README says, instead of keeping its own, so the
    /// snapshot names and descriptions are no more readable than the disk.
    /// </summary>
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task The_catalog_follows_the_disk_s_mode_when_the_disk_changed_since_it_was_written()
    {
        using var dir = new TempDirectory("owner-catalog");
        string disk = dir.File("d.vdi"), catalog = disk + ".snapshots.json";
        Assert.Equal(0, (await CliRunner.RunAsync("create", disk, "--size", "8M")).ExitCode);
        File.SetUnixFileMode(disk, (UnixFileMode)0x1A4); // 0644
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "s1", "--description", "private notes")).ExitCode);
        Assert.Equal((UnixFileMode)0x1A4, File.GetUnixFileMode(catalog));

        File.SetUnixFileMode(disk, (UnixFileMode)0x180); // 0600
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "s2")).ExitCode);
        Assert.Equal((UnixFileMode)0x180, File.GetUnixFileMode(disk));
        Assert.Equal(Access(disk), Access(catalog));
    }

    // nobody:nogroup, the mode, a user attribute, a security label and an ACL granting nobody read and write.
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void Give(string path, UnixFileMode mode)
    {
        Assert.Equal(0, Libc.Chown(path, Nobody, NoGroup));
        SetXattr(path, "user.x", Encoding.ASCII.GetBytes("kept"));
        SetXattr(path, "security.dse-test", Encoding.ASCII.GetBytes("label"));
        // posix_acl_xattr: version 2, then (tag, perm, id): USER_OBJ rw, USER nobody rw, GROUP_OBJ r, MASK rw, OTHER -.
        var acl = new List<byte>(BitConverter.GetBytes(2u));
        foreach (var (tag, perm, id) in new (ushort, ushort, uint)[] { (1, 6, uint.MaxValue), (2, 6, Nobody), (4, 4, uint.MaxValue), (0x10, 6, uint.MaxValue), (0x20, 0, uint.MaxValue) })
        {
            acl.AddRange(BitConverter.GetBytes(tag));
            acl.AddRange(BitConverter.GetBytes(perm));
            acl.AddRange(BitConverter.GetBytes(id));
        }
        SetXattr(path, "system.posix_acl_access", acl.ToArray());
        File.SetUnixFileMode(path, mode);
    }

    private static void SetXattr(string path, string name, byte[] value) =>
        Assert.True(Libc.SetXattr(path, name, ref MemoryMarshal.GetArrayDataReference(value), (nuint)value.Length, 0) == 0,
            $"setxattr {name}: errno {Marshal.GetLastPInvokeError()}");

    // "uid:gid mode name=value ..." of a file, attributes in name order.
    private static string Access(string path)
    {
        Assert.Equal(0, Libc.Stat(path, out var st));
        var names = new byte[4096];
        nint n = Libc.ListXattr(path, ref MemoryMarshal.GetArrayDataReference(names), (nuint)names.Length);
        Assert.True(n >= 0);
        var attributes = Encoding.UTF8.GetString(names, 0, (int)n).Split('\0', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal)
            .Select(name =>
            {
                var value = new byte[4096];
                nint len = Libc.GetXattr(path, name, ref MemoryMarshal.GetArrayDataReference(value), (nuint)value.Length);
                return $"{name}={Convert.ToHexString(value, 0, (int)Math.Max(len, 0))}";
            });
        return $"{st.Uid}:{st.Gid} {Convert.ToString(st.Mode & 0xFFF, 8)} {string.Join(' ', attributes)}";
    }
}
