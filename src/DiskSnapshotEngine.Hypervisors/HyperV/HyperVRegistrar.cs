using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.HyperV;

/// <summary>What a Hyper-V step did.</summary>
/// <param name="Script">The PowerShell script (always returned, so the user can read or run it).</param>
/// <param name="Ran">True when it was run (on Windows, with powershell.exe present).</param>
/// <param name="Notice">Why it was not run and what to do, or null.</param>
public sealed record HyperVResult(string Script, bool Ran, string? Notice);

/// <summary>Runs the Hyper-V scripts on Windows; elsewhere returns them for the user to run on the Hyper-V host.</summary>
public sealed class HyperVRegistrar
{
    private readonly ICommandRunner _runner;
    private readonly bool _isWindows;

    /// <summary>Creates a registrar. <paramref name="isWindows"/> is for tests (default: the current OS).</summary>
    public HyperVRegistrar(ICommandRunner? runner = null, bool? isWindows = null)
    {
        _runner = runner ?? ProcessCommandRunner.Instance;
        _isWindows = isWindows ?? OperatingSystem.IsWindows();
    }

    /// <summary>Creates the VM and attaches the disk (the script rolls the VM back if attaching fails).</summary>
    /// <exception cref="DiskImageException">InvalidArgument, Unsupported, ExternalTool (PowerShell failed; nothing is left registered).</exception>
    public HyperVResult Register(HyperVVmSpec spec, VmDiskState state, bool dryRun) => Run(HyperVScript.Register(spec, state), dryRun);

    /// <summary>
    /// Takes a checkpoint: on Windows with <paramref name="viaWmi"/>, through Msvm_VirtualSystemSnapshotService (no
    /// PowerShell needed); otherwise with Checkpoint-VM.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument, FileNotFound (no such VM, WMI path), ExternalTool.</exception>
    public HyperVResult Checkpoint(string vmName, string? snapshotName, bool dryRun, bool viaWmi = false)
    {
        var script = HyperVScript.Checkpoint(vmName, snapshotName);
        if (viaWmi && !dryRun && _isWindows && OperatingSystem.IsWindows())
        {
            new HyperVWmiSnapshotService().CreateSnapshot(vmName, snapshotName);
            return new HyperVResult(script, true, null);
        }
        return Run(script, dryRun);
    }

    private HyperVResult Run(string script, bool dryRun)
    {
        if (dryRun) return new HyperVResult(script, false, null);
        if (!_isWindows)
            return new HyperVResult(script, false, "Hyper-V runs only on Windows: run this script in an elevated PowerShell on the Hyper-V host");
        if (!_runner.IsAvailable(HyperVScript.Program))
            throw new DiskImageException(ErrorKind.ExternalTool,
                $"{HyperVScript.Program} is not on the PATH; run this script in an elevated Windows PowerShell: {script.ReplaceLineEndings("; ")}");
        ProcessCommandRunner.RunChecked(_runner, HyperVScript.Command(script));
        return new HyperVResult(script, true, null);
    }
}
