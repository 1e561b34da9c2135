namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>A file region that holds metadata: a data block must not overlap it.</summary>
internal readonly record struct VhdRegion(string Name, long Offset, long Length)
{
    public long End => Offset + Length;
    public bool Overlaps(long offset, long length) => offset < End && Offset < offset + length;
}

/// <summary>What <see cref="VhdDriver"/> found and validated when opening a file; the layer is built from it.</summary>
/// <param name="Footer">The footer in use (from the end of the file, or its copy at offset 0 when the end is damaged).</param>
/// <param name="FooterOffset">Where the footer at the end of the file lies (for a recovered footer: the end of the file).</param>
/// <param name="FooterLength">512, or 511 for a footer written before Virtual PC 2004.</param>
/// <param name="FooterRecovered">The end of the file holds no valid footer; <see cref="Footer"/> is the copy at offset 0.</param>
/// <param name="FooterCopyDiffers">A dynamic disk's copy at offset 0 is missing, damaged or not the same as the footer.</param>
/// <param name="Header">The dynamic disk header; null for a fixed disk.</param>
/// <param name="HeaderOffset">File offset of <see cref="Header"/>.</param>
/// <param name="HeaderRecovered">The header in the file was torn; <see cref="Header"/> is the copy beside its locators.</param>
/// <param name="Locators">The parent locator entries, decoded.</param>
/// <param name="Metadata">Footer copy, header, BAT and locator data: regions no block may overlap.</param>
internal sealed record VhdLayout(
    VhdFooter Footer,
    long FooterOffset,
    int FooterLength,
    bool FooterRecovered,
    bool FooterCopyDiffers,
    VhdDynamicHeader? Header,
    long HeaderOffset,
    bool HeaderRecovered,
    IReadOnlyList<VhdParentLocators.Decoded> Locators,
    IReadOnlyList<VhdRegion> Metadata);
