using System.Globalization;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;

namespace DiskSnapshotEngine.Hypervisors.HyperV;

/// <summary>What a new Hyper-V VM looks like.</summary>
/// <param name="Name">VM name.</param>
/// <param name="Generation">1 (BIOS, IDE boot disk) or 2 (UEFI, SCSI boot disk).</param>
/// <param name="MemoryMiB">Startup memory in MiB.</param>
public sealed record HyperVVmSpec(string Name, int Generation = 2, int MemoryMiB = 1024)
{
    /// <summary>Checks what New-VM would refuse.</summary>
    /// <exception cref="DiskImageException">InvalidArgument.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) Bad("the VM name is empty");
        if (Name.Length > 100) Bad("Hyper-V VM names are at most 100 characters");
        if (Name.Any(char.IsControl)) Bad("the VM name contains control characters");
        if (Generation is not (1 or 2)) Bad($"generation {Generation} is not 1 or 2");
        if (MemoryMiB is < 32 or > 12 * 1024 * 1024) Bad($"memory {MemoryMiB} MiB is outside 32 MiB..12 TiB");
    }

    private static void Bad(string m) => throw new DiskImageException(ErrorKind.InvalidArgument, m);
}

/// <summary>
/// The PowerShell that registers a disk with Hyper-V and takes checkpoints. Every value enters the script as a
/// single-quoted literal (<see cref="PowerShellLiteral"/>); the script is run through <c>-EncodedCommand</c>.
/// </summary>
public static class HyperVScript
{
    /// <summary>Windows PowerShell, which carries the Hyper-V module.</summary>
    public const string Program = "powershell.exe";

    /// <summary>
    /// New-VM without a disk, then Add-VMHardDiskDrive; if attaching fails the new VM is removed again (Remove-VM
    /// never deletes disk files), so no half-built VM is left behind. Generation 2 also boots from the disk. Golden
    /// (sealed) parents of the disk get the file's read-only attribute first, so nothing on the Hyper-V host writes them.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument; Unsupported for a disk Hyper-V cannot open (VDI, raw), or one that is itself sealed (Hyper-V would write it).</exception>
    public static string Register(HyperVVmSpec spec, VmDiskState state)
    {
        spec.Validate();
        state.Validate();
        var disk = state.CurrentMedium;
        // Generation 2 VMs boot from VHDX only; generation 1 also takes VHD.
        if (disk.Format == MediumFormats.Vhd && spec.Generation != 1)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"a generation {spec.Generation} Hyper-V VM needs a VHDX disk (VHD is for generation 1); convert it first: dse clone {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(System.IO.Path.ChangeExtension(disk.Path, ".vhdx"))}",
                disk.Path);
        if (disk.Format is not (MediumFormats.Vhdx or MediumFormats.Vhd))
            throw new DiskImageException(ErrorKind.Unsupported,
                $"Hyper-V opens only VHD and VHDX disks, not {disk.Format}; convert it first: dse clone {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(System.IO.Path.ChangeExtension(disk.Path, ".vhdx"))}",
                disk.Path);
        if (disk.IsGolden)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"the disk is sealed as a golden image and Hyper-V would write into it; register a linked clone of it instead: dse clone --linked {ExternalCommand.ShellQuote(disk.Path)} {ExternalCommand.ShellQuote(System.IO.Path.ChangeExtension(disk.Path, ".vm.vhdx"))}",
                disk.Path);
        var name = PowerShellLiteral.Quote(spec.Name);
        var path = PowerShellLiteral.Quote(disk.Path);
        var memory = ((long)spec.MemoryMiB << 20).ToString(CultureInfo.InvariantCulture);
        var controller = spec.Generation == 1
            ? "-ControllerType IDE -ControllerNumber 0 -ControllerLocation 0"
            : "-ControllerType SCSI -ControllerNumber 0 -ControllerLocation 0";
        var sb = new StringBuilder();
        sb.Append("$ErrorActionPreference = 'Stop'\n");
        foreach (var parent in state.CurrentChain())
            if (parent.IsGolden)
                sb.Append($"Set-ItemProperty -LiteralPath {PowerShellLiteral.Quote(parent.Path)} -Name IsReadOnly -Value $true\n");
        sb.Append($"New-VM -Name {name} -Generation {spec.Generation} -MemoryStartupBytes {memory} -NoVHD | Out-Null\n");
        sb.Append("try {\n");
        sb.Append($"  Add-VMHardDiskDrive -VMName {name} {controller} -Path {path}\n");
        if (spec.Generation == 2)
            sb.Append($"  Set-VMFirmware -VMName {name} -FirstBootDevice (Get-VMHardDiskDrive -VMName {name})\n");
        sb.Append("} catch {\n");
        sb.Append($"  Remove-VM -Name {name} -Force\n");
        sb.Append("  throw\n");
        sb.Append("}\n");
        return sb.ToString();
    }

    /// <summary>Checkpoint-VM, with a name when one is given.</summary>
    /// <exception cref="DiskImageException">InvalidArgument for an empty VM name.</exception>
    public static string Checkpoint(string vmName, string? snapshotName)
    {
        if (string.IsNullOrWhiteSpace(vmName)) throw new DiskImageException(ErrorKind.InvalidArgument, "the VM name is empty");
        var line = $"Checkpoint-VM -Name {PowerShellLiteral.Quote(vmName)}";
        if (snapshotName is not null) line += $" -SnapshotName {PowerShellLiteral.Quote(snapshotName)}";
        return "$ErrorActionPreference = 'Stop'\n" + line + "\n";
    }

    /// <summary>The command that runs <paramref name="script"/>: no profile, no prompts, the script base64-encoded.</summary>
    public static ExternalCommand Command(string script) =>
        ExternalCommand.Of(Program, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-EncodedCommand", PowerShellLiteral.Encode(script));
}
