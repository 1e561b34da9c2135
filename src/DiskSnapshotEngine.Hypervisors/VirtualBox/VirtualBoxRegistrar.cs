using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>What a VirtualBox registration did.</summary>
/// <param name="VboxPath">The machine file (written unless this was a dry run).</param>
/// <param name="Registered">True when VBoxManage registervm succeeded.</param>
/// <param name="Commands">For a dry run, the VBoxManage commands that would do the same; otherwise the commands run or left to run.</param>
/// <param name="Notice">A line for the user (VBoxManage missing: the command to run), or null.</param>
public sealed record VirtualBoxRegistration(string VboxPath, bool Registered, IReadOnlyList<ExternalCommand> Commands, string? Notice);

/// <summary>Registers a disk as a VirtualBox machine: writes the .vbox file, then <c>VBoxManage registervm</c> when it is on the PATH.</summary>
public sealed class VirtualBoxRegistrar
{
    private readonly ICommandRunner _runner;

    /// <summary>Creates a registrar that starts commands with <paramref name="runner"/>.</summary>
    public VirtualBoxRegistrar(ICommandRunner? runner = null) => _runner = runner ?? ProcessCommandRunner.Instance;

    /// <summary>VirtualBox's default machine folder: <c>~/VirtualBox VMs</c>.</summary>
    public static string DefaultBaseFolder =>
        System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), "VirtualBox VMs");

    /// <summary>
    /// Registers the machine. A dry run writes nothing and returns the equivalent VBoxManage commands. Otherwise the
    /// machine file goes to <c>baseFolder/NAME/NAME.vbox</c>; if registervm fails the file (and the folder, if this
    /// call created it) is removed again, so nothing is left half-registered.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument, Unsupported, AlreadyExists, Io, ExternalTool (registervm failed; the file was rolled back).</exception>
    public VirtualBoxRegistration Register(VboxMachineSpec spec, VmDiskState state, string? baseFolder, bool dryRun, DateTimeOffset? now = null)
    {
        baseFolder = System.IO.Path.GetFullPath(baseFolder ?? DefaultBaseFolder);
        var machineFolder = System.IO.Path.Combine(baseFolder, spec.Name);
        var vboxPath = System.IO.Path.Combine(machineFolder, spec.Name + ".vbox");
        var doc = VboxMachineWriter.Create(spec, state, now ?? DateTimeOffset.UtcNow); // validates before anything is touched
        if (dryRun)
            return new VirtualBoxRegistration(vboxPath, false, VBoxManageCommands.CreateMachine(spec, state, baseFolder), null);

        if (File.Exists(vboxPath))
            throw new DiskImageException(ErrorKind.AlreadyExists, "a machine file already exists there; choose another --name or --folder", vboxPath);
        bool createdFolder = !Directory.Exists(machineFolder);
        Directory.CreateDirectory(machineFolder);
        try
        {
            AtomicXmlFile.Save(doc, vboxPath, mustNotExist: true);
        }
        catch
        {
            if (createdFolder) TryDeleteEmptyFolder(machineFolder);
            throw;
        }

        var register = VBoxManageCommands.RegisterVm(vboxPath);
        if (!_runner.IsAvailable(VBoxManageCommands.Program))
            return new VirtualBoxRegistration(vboxPath, false, new[] { register },
                $"VBoxManage is not on the PATH: the machine file is written but not registered; run: {register}");
        try
        {
            ProcessCommandRunner.RunChecked(_runner, register);
        }
        catch (DiskImageException e)
        {
            // Roll back: VirtualBox did not take the machine, so the file must not linger as if it had.
            DurableFiles.TryDelete(vboxPath);
            if (createdFolder) TryDeleteEmptyFolder(machineFolder);
            throw new DiskImageException(ErrorKind.ExternalTool, $"{e.Detail}; the machine file was removed again, nothing is registered", vboxPath, inner: e);
        }
        return new VirtualBoxRegistration(vboxPath, true, new[] { register }, null);
    }

    private static void TryDeleteEmptyFolder(string path)
    {
        try { if (!Directory.EnumerateFileSystemEntries(path).Any()) Directory.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
