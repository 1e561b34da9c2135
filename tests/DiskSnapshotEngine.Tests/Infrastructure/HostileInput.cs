using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>The check every hostile-input test makes (after VhdxHostileInputTests.Expect), for any format.</summary>
public static class HostileInput
{
    /// <summary>
    /// Opens read-only and read-write, reads the whole disk, and expects the same typed error both times: its kind, the
    /// structure named, the file, one line; the file's bytes stay as they were. With <paramref name="allocationLimit"/>
    /// each attempt must also allocate less than that many bytes (bounded memory whatever a table claims).
    /// </summary>
    public static DiskImageException Expect(string path, ErrorKind kind, string structure, string? messagePart = null,
        long? allocationLimit = null)
    {
        string before = ContentHash.OfFile(path);
        DiskImageException? last = null;
        foreach (bool writable in new[] { false, true })
        {
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<DiskImageException>(() =>
            {
                using var chain = DiskImage.Open(path, writable ? OpenOptions.ReadWrite : OpenOptions.ReadOnly);
                var buffer = new byte[1 << 20];
                for (long at = 0; at < chain.VirtualSize; at += buffer.Length)
                    chain.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, chain.VirtualSize - at)));
            });
            if (allocationLimit is long limit)
                Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < limit, $"more than {limit >> 20} MiB allocated");
            Assert.Equal(kind, e.Kind);
            Assert.Equal(structure, e.Structure);
            Assert.Equal(Path.GetFullPath(path), e.Path);
            if (messagePart is not null) Assert.Contains(messagePart, e.Message);
            Assert.DoesNotContain('\n', e.Message);
            last = e;
        }
        Assert.Equal(before, ContentHash.OfFile(path));
        return last!;
    }
}
