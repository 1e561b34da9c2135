using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

/// <summary>Reads and validates entries sector by sector (memory: one sector, whatever an entry claims).</summary>
internal sealed class VhdxLogEntryScanner(IImageFile file, long logOffset, uint logLength, Guid logGuid)
{
    private const string EntryStructure = "Log Entry";
    private const int Sector = VhdxLogLayout.SectorSize;
    private readonly byte[] _sector = new byte[Sector];

    private void ReadSector(uint entryOffset, long index)
    {
        long inLog = (entryOffset + index * Sector) % logLength;
        file.ReadExactly(_sector, logOffset + inLog, EntryStructure);
    }

    /// <summary>True when the entry at <paramref name="entryOffset"/> is valid (2.3.1: signature, lengths, descriptors, data sectors, checksum).</summary>
    public bool TryValidate(uint entryOffset, out LogEntryHeader header)
    {
        header = default;
        ReadSector(entryOffset, 0);
        if (!LogEntryHeader.HasSignature(_sector)) return false;
        header = LogEntryHeader.Parse(_sector);
        if (header.EntryLength == 0 || header.EntryLength % Sector != 0 || header.EntryLength > logLength) return false;
        if (header.Tail % Sector != 0 || header.Tail >= logLength) return false;
        if (header.LogGuid != logGuid) return false;
        if (header.FlushedFileOffset > VhdxLogLayout.MaxFileOffset || header.LastFileOffset > VhdxLogLayout.MaxFileOffset) return false;
        long sectors = header.EntryLength / Sector;
        // Checked against the entry's own length before anything is sized by DescriptorCount.
        long descriptorSectors = LogEntryHeader.DescriptorSectors(header.DescriptorCount);
        if (descriptorSectors > sectors) return false;

        uint crc = VhdxLogLayout.CrcSeed;
        long dataSectors = 0;
        for (long i = 0; i < sectors; i++)
        {
            if (i > 0) ReadSector(entryOffset, i);
            if (i < descriptorSectors)
            {
                if (!CheckDescriptors(i, header, ref dataSectors)) return false;
                if (i == 0)
                {
                    _sector.AsSpan(LogEntryHeader.ChecksumOffset, 4).Clear();
                }
                // An entry is exactly its descriptor sectors plus one data sector per data descriptor (as qemu
                // also requires). Refusing slack here also bounds the scan: a forged header can make the reader
                // walk only up to the next sector that is not a valid data sector, not the whole ring.
                if (i == descriptorSectors - 1 && descriptorSectors + dataSectors != sectors) return false;
            }
            else if (i - descriptorSectors < dataSectors && !DataSector.IsValid(_sector, header.SequenceNumber))
            {
                return false;
            }
            crc = VhdxLogLayout.CrcUpdate(crc, _sector);
        }
        return VhdxLogLayout.CrcFinish(crc) == header.Checksum;
    }

    private bool CheckDescriptors(long sectorIndex, in LogEntryHeader header, ref long dataSectors)
    {
        var (first, last) = DescriptorRange(sectorIndex, header.DescriptorCount);
        for (long k = first; k < last; k++)
        {
            var d = _sector.AsSpan((int)(LogEntryHeader.Size + k * LogDescriptor.Size - sectorIndex * Sector), LogDescriptor.Size);
            switch (LogDescriptor.SignatureOf(d))
            {
                case ZeroDescriptor.Signature:
                    var z = ZeroDescriptor.Parse(d);
                    if (z.SequenceNumber != header.SequenceNumber || z.ZeroLength == 0 || z.ZeroLength % Sector != 0
                        || z.FileOffset % Sector != 0 || z.FileOffset > VhdxLogLayout.MaxFileOffset
                        || z.ZeroLength > VhdxLogLayout.MaxFileOffset - z.FileOffset) return false;
                    break;
                case DataDescriptor.Signature:
                    var dd = DataDescriptor.Parse(d);
                    if (dd.SequenceNumber != header.SequenceNumber || dd.FileOffset % Sector != 0
                        || dd.FileOffset > VhdxLogLayout.MaxFileOffset - Sector) return false;
                    dataSectors++;
                    break;
                default:
                    return false;
            }
        }
        return true;
    }

    /// <summary>Descriptor indices [first, last) stored in a given sector of the entry (they follow the 64-byte header).</summary>
    private static (long First, long Last) DescriptorRange(long sectorIndex, uint count)
    {
        long start = sectorIndex * Sector, end = start + Sector;
        long first = Math.Max(0, (start - LogEntryHeader.Size + LogDescriptor.Size - 1) / LogDescriptor.Size);
        long last = Math.Min(count, (end - LogEntryHeader.Size) / LogDescriptor.Size);
        return (first, Math.Max(first, last));
    }

    /// <summary>Appends an already validated entry's writes in descriptor order (data descriptors pair with data sectors in order).</summary>
    public void CollectWrites(uint entryOffset, in LogEntryHeader header, List<VhdxLogWrite> writes)
    {
        long descriptorSectors = LogEntryHeader.DescriptorSectors(header.DescriptorCount);
        var descriptors = new List<(bool IsData, ZeroDescriptor Zero, DataDescriptor Data)>((int)header.DescriptorCount);
        for (long i = 0; i < descriptorSectors; i++)
        {
            ReadSector(entryOffset, i);
            var (first, last) = DescriptorRange(i, header.DescriptorCount);
            for (long k = first; k < last; k++)
            {
                var d = _sector.AsSpan((int)(LogEntryHeader.Size + k * LogDescriptor.Size - i * Sector), LogDescriptor.Size);
                descriptors.Add(LogDescriptor.SignatureOf(d) == DataDescriptor.Signature
                    ? (true, default, DataDescriptor.Parse(d))
                    : (false, ZeroDescriptor.Parse(d), default));
            }
        }
        long dataIndex = 0;
        foreach (var (isData, zero, data) in descriptors)
        {
            if (isData)
            {
                ReadSector(entryOffset, descriptorSectors + dataIndex++);
                writes.Add(new VhdxLogWrite((long)data.FileOffset, DataSector.Decode(_sector, data), Sector));
            }
            else
            {
                writes.Add(new VhdxLogWrite((long)zero.FileOffset, null, (long)zero.ZeroLength));
            }
        }
    }
}
