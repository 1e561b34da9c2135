using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Formats.Vhdx.Log;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx.Log;

/// <summary>qemu must replay an entry our writer made, as Hyper-V would: the log left dirty by a cut commit.</summary>
public class VhdxLogQemuInteropTests
{
    private static readonly Guid BatRegion = new("2DC27766-F623-4200-9D64-115E9BFD4A08");
    private const int MiB = 1 << 20;

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Qemu_replays_a_log_entry_we_wrote_that_maps_a_new_block()
    {
        using var dir = new TempDirectory("vhdxlog");
        string path = dir.File("interop.vhdx");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic,block_size=1M,log_size=1M", path, "16M");
        ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "write -P 0xa5 0 1M", path);

        var logGuid = Guid.NewGuid();
        long logOffset, batOffset, newBlock;
        uint logLength;
        byte[] batSector = new byte[4096];
        using (var f = ImageFile.Open(path, writable: true))
        {
            // Header section (MS-VHDX 2.2.2): LogGuid at 48, LogLength at 68, LogOffset at 72; CRC-32C over 4 KiB at 4.
            var h = new byte[4096];
            f.ReadExactly(h, 64 * 1024, "header");
            logLength = BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(68));
            logOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(h.AsSpan(72));
            foreach (long at in new[] { 64L * 1024, 128L * 1024 })
            {
                f.ReadExactly(h, at, "header");
                logGuid.TryWriteBytes(h.AsSpan(48, 16));
                BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), 0);
                BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), VhdxLogLayout.CrcFinish(VhdxLogLayout.CrcUpdate(VhdxLogLayout.CrcSeed, h)));
                f.Write(h, at);
            }
            var rt = new byte[65536];
            f.ReadExactly(rt, 192 * 1024, "region table");
            batOffset = -1;
            for (int i = 0; i < BinaryPrimitives.ReadInt32LittleEndian(rt.AsSpan(8)); i++)
                if (new Guid(rt.AsSpan(16 + 32 * i, 16)) == BatRegion)
                    batOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(rt.AsSpan(16 + 32 * i + 16));
            Assert.True(batOffset > 0);

            // The payload of the new block goes in first and is flushed, as a driver would before logging the BAT.
            newBlock = (f.Length + MiB - 1) / MiB * MiB;
            f.Write(Enumerable.Repeat((byte)0x5a, MiB).ToArray(), newBlock);
            f.Flush();
            f.ReadExactly(batSector, batOffset, "BAT");
        }
        Assert.NotEqual(6UL, BinaryPrimitives.ReadUInt64LittleEndian(batSector.AsSpan(8)) & 7); // block 1 not yet present (qemu marks it zero)
        // BAT entry 1 (MS-VHDX 2.5.1): FileOffsetMB in bits 20..63, state 6 = PAYLOAD_BLOCK_FULLY_PRESENT.
        BinaryPrimitives.WriteUInt64LittleEndian(batSector.AsSpan(8), (ulong)newBlock | 6);

        // Cut the commit right after the entry is durable: the BAT sector is changed only in the log.
        var crash = CrashSimulationFile.FromFile(path);
        crash.FailAtWrite = 1;
        var writer = new VhdxLogWriter(crash, logOffset, logLength, logGuid, 1);
        var e = Assert.Throws<DiskImageException>(() => writer.Commit([new VhdxLogWrite(batOffset, batSector, 4096)], crash.Length, crash.Length));
        Assert.Equal(ErrorKind.Io, e.Kind);
        File.WriteAllBytes(path, crash.AfterPowerLoss([]));

        // Read-only, qemu refuses a dirty log; so the block is not visible without replay.
        var ro = ExternalTool.Run("qemu-io", "-r", "-f", "vhdx", "-c", "read -P 0x5a 1M 1M", path);
        Assert.Contains("log", ro.StdOut + ro.StdErr, StringComparison.OrdinalIgnoreCase);

        // Read-write, qemu replays our entry: block 1 now reads as the payload we wrote, block 0 is intact.
        var rw = ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "read -P 0x5a 1M 1M", "-c", "read -P 0xa5 0 1M", "-c", "read -P 0 2M 14M", path);
        Assert.DoesNotContain("Pattern verification failed", rw);
        Assert.Contains("read 1048576/1048576", rw);
        ExternalTool.RunChecked("qemu-img", "check", "-q", "-f", "vhdx", path);
    }
}
