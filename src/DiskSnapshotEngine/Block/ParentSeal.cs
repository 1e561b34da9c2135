namespace DiskSnapshotEngine.Block;

/// <summary>What a new linked clone left of its parent's seal (see <see cref="Operations.LinkedClone.Create"/>).</summary>
public enum ParentSealOutcome
{
    /// <summary>The parent is sealed as the clone needs it: sealed now, or it was already.</summary>
    Sealed,

    /// <summary>The parent's format carries no seal mark (VHD, raw): nothing in the file keeps dse verbs from changing it.</summary>
    NoMark,

    /// <summary>The parent had no seal and this process cannot write it (<see cref="ParentSeal.WhyNotWritable"/>): it is left unsealed.</summary>
    LeftUnsealed,

    /// <summary>
    /// The parent's seal records another clone as its only one and this process cannot write it
    /// (<see cref="ParentSeal.WhyNotWritable"/>): the record was not updated to "unknown" as a second clone makes it.
    /// </summary>
    SoleChildStale,
}

/// <summary>A linked clone's parent and what became of its seal, as the clone's creation found it.</summary>
/// <param name="Path">The parent's full path.</param>
/// <param name="Format">The parent's format.</param>
/// <param name="Outcome">What became of its seal.</param>
/// <param name="WhyNotWritable">Why this process cannot write the parent (<see cref="Seals.WhyNotWritable"/>), when that kept its seal from being written; else null.</param>
public sealed record ParentSeal(string Path, ImageFormat Format, ParentSealOutcome Outcome, string? WhyNotWritable);
