namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// Shrinking for model tests whose scripts are arrays of independent steps (each step carries its own seed, so a
/// step does the same whatever runs before it): FsCheck drops steps from a failing script until none can go.
/// </summary>
public static class ScriptShrink
{
    /// <summary>Shorter scripts: each half alone, then the script without one step, for every step.</summary>
    public static IEnumerable<T[]> DropSteps<T>(T[] steps)
    {
        if (steps.Length > 1)
        {
            yield return steps[..(steps.Length / 2)];
            yield return steps[(steps.Length / 2)..];
        }
        for (int i = 0; i < steps.Length; i++) yield return [.. steps[..i], .. steps[(i + 1)..]];
    }
}
