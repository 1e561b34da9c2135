namespace DiskSnapshotEngine.Block;

/// <summary>What a new linked clone left of its parent's seal (see <see cref="Operations.LinkedClone.Create"/>).</summary>
public enum ParentSealOutcome
{
    /// <summary>The parent is sealed as the clone needs it: sealed now, or it was already.</summary>
    Sealed,

    /// <summary>The parent's format carries no seal mark (VHD, raw): nothing in the file keeps dse verbs from changing it.</summary>
    NoMark,

    /// <summary>The parent had no seal and this process cannot write it (<see cref="ParentSeal.Reason"/>): it is left unsealed.</summary>
    LeftUnsealed,

    /// <summary>
    /// The parent's seal records another clone as its only one and this process cannot write it
    /// (<see cref="ParentSeal.Reason"/>): the record was not updated to "unknown" as a second clone makes it.
    /// </summary>
    SoleChildStale,

    /// <summary>
    /// Writing the seal the new child needs failed after the child was linked (rebase: another process holds the
    /// parent, an I/O error; <see cref="ParentSeal.Reason"/> says which): the parent's seal is as it was, and nothing
    /// keeps it so; 'dse seal' writes it.
    /// </summary>
    SealFailed,
}

/// <summary>A linked clone's parent and what became of its seal, as the clone's creation found it.</summary>
/// <param name="Path">The parent's full path.</param>
/// <param name="Format">The parent's format.</param>
/// <param name="Outcome">What became of its seal.</param>
/// <param name="Reason">What kept its seal from being written (<see cref="Seals.WhyNotWritable"/>, or the failed write's error), when something did; else null.</param>
public sealed record ParentSeal(string Path, ImageFormat Format, ParentSealOutcome Outcome, string? Reason)
{
    /// <summary>The <see cref="Reason"/> when another process holds the parent open (a lock keeps the seal's write out).</summary>
    public const string Held = "another process has it open";
}
