using System.Management;
using System.Runtime.Versioning;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Hypervisors.HyperV;

/// <summary>
/// Takes Hyper-V checkpoints through WMI (root\virtualization\v2) instead of PowerShell:
/// <c>Msvm_VirtualSystemSnapshotService.CreateSnapshot(AffectedSystem, SnapshotSettings, SnapshotType = 2)</c>,
/// waiting on the returned job when the answer is 4096. Windows only; it cannot run on the Linux build machine,
/// so only the return-code mapping (<see cref="SnapshotServiceCodes"/>) is tested there.
/// </summary>
[SupportedOSPlatform("windows")]
public sealed class HyperVWmiSnapshotService
{
    private const string Namespace = @"\\.\root\virtualization\v2";
    private readonly TimeSpan _timeout;

    /// <summary>Creates the service client; <paramref name="timeout"/> bounds the wait on the snapshot job (default 30 minutes).</summary>
    public HyperVWmiSnapshotService(TimeSpan? timeout = null) => _timeout = timeout ?? TimeSpan.FromMinutes(30);

    /// <summary>Takes a full snapshot of the VM named <paramref name="vmName"/> and names it <paramref name="snapshotName"/> when given.</summary>
    /// <exception cref="DiskImageException">FileNotFound (no such VM), ExternalTool (WMI error or a non-zero return value, with its meaning), Cancelled.</exception>
    public void CreateSnapshot(string vmName, string? snapshotName, CancellationToken cancel = default)
    {
        try
        {
            var scope = new ManagementScope(Namespace);
            scope.Connect();
            using var vm = QueryOne(scope, $"SELECT * FROM Msvm_ComputerSystem WHERE ElementName = {SnapshotServiceCodes.WqlString(vmName)}")
                ?? throw new DiskImageException(ErrorKind.FileNotFound, $"Hyper-V has no VM named '{vmName}'");
            using var service = QueryOne(scope, "SELECT * FROM Msvm_VirtualSystemSnapshotService")
                ?? throw new DiskImageException(ErrorKind.ExternalTool, "Hyper-V's Msvm_VirtualSystemSnapshotService is not available (is the Hyper-V role installed?)");

            using var inParams = service.GetMethodParameters("CreateSnapshot");
            inParams["AffectedSystem"] = vm.Path.Path;
            inParams["SnapshotType"] = SnapshotServiceCodes.FullSnapshot;
            using var outParams = service.InvokeMethod("CreateSnapshot", inParams, null);
            uint rv = Convert.ToUInt32(outParams["ReturnValue"], System.Globalization.CultureInfo.InvariantCulture);
            string? snapshotPath = outParams["ResultingSnapshot"] as string;
            if (rv == SnapshotServiceCodes.JobStarted)
                snapshotPath = WaitForJob(scope, (string)outParams["Job"], cancel) ?? snapshotPath;
            else if (rv != SnapshotServiceCodes.Completed)
                throw new DiskImageException(ErrorKind.ExternalTool,
                    $"Hyper-V CreateSnapshot for '{vmName}' returned {rv}: {SnapshotServiceCodes.Describe(rv)}");

            if (snapshotName is not null && snapshotPath is not null) Rename(scope, snapshotPath, snapshotName);
        }
        catch (ManagementException e)
        {
            throw new DiskImageException(ErrorKind.ExternalTool, $"Hyper-V WMI error {e.ErrorCode}: {e.Message}", inner: e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DiskImageException(ErrorKind.ExternalTool, "access to Hyper-V WMI was denied: run elevated or as a member of Hyper-V Administrators", inner: e);
        }
    }

    /// <summary>Polls the job until it finishes; returns the snapshot it produced (Msvm_AffectedJobElement), if any.</summary>
    private string? WaitForJob(ManagementScope scope, string jobPath, CancellationToken ct)
    {
        using var job = new ManagementObject(scope, new ManagementPath(jobPath), null);
        var deadline = DateTime.UtcNow + _timeout;
        while (true)
        {
            job.Get();
            var state = Convert.ToUInt16(job["JobState"], System.Globalization.CultureInfo.InvariantCulture);
            if (SnapshotServiceCodes.IsFinished(state))
            {
                if (state != (ushort)SnapshotServiceCodes.JobState.Completed)
                {
                    var code = job["ErrorCode"];
                    var why = job["ErrorDescription"] as string ?? ((SnapshotServiceCodes.JobState)state).ToString();
                    throw new DiskImageException(ErrorKind.ExternalTool, $"the Hyper-V snapshot job ended as {(SnapshotServiceCodes.JobState)state} (error {code}): {why}");
                }
                foreach (ManagementObject o in job.GetRelated("Msvm_VirtualSystemSettingData", "Msvm_AffectedJobElement", null, null, null, null, false, null))
                    using (o) return o.Path.Path;
                return null;
            }
            if (ct.IsCancellationRequested)
                throw new DiskImageException(ErrorKind.Cancelled, "cancelled while waiting for the Hyper-V snapshot job; it keeps running in Hyper-V");
            if (DateTime.UtcNow > deadline)
                throw new DiskImageException(ErrorKind.ExternalTool, $"the Hyper-V snapshot job did not finish in {_timeout.TotalMinutes:0} minutes: {SnapshotServiceCodes.Describe(3)}");
            Thread.Sleep(500);
        }
    }

    /// <summary>Sets the snapshot's ElementName through Msvm_VirtualSystemManagementService.ModifySystemSettings.</summary>
    private static void Rename(ManagementScope scope, string snapshotPath, string name)
    {
        using var snapshot = new ManagementObject(scope, new ManagementPath(snapshotPath), null);
        snapshot.Get();
        snapshot["ElementName"] = name;
        using var mgmt = QueryOne(scope, "SELECT * FROM Msvm_VirtualSystemManagementService")
            ?? throw new DiskImageException(ErrorKind.ExternalTool, "Hyper-V's Msvm_VirtualSystemManagementService is not available");
        using var inParams = mgmt.GetMethodParameters("ModifySystemSettings");
        inParams["SystemSettings"] = snapshot.GetText(TextFormat.WmiDtd20);
        using var outParams = mgmt.InvokeMethod("ModifySystemSettings", inParams, null);
        uint rv = Convert.ToUInt32(outParams["ReturnValue"], System.Globalization.CultureInfo.InvariantCulture);
        if (rv is not (SnapshotServiceCodes.Completed or SnapshotServiceCodes.JobStarted))
            throw new DiskImageException(ErrorKind.ExternalTool,
                $"the snapshot was taken but naming it '{name}' failed with {rv}: {SnapshotServiceCodes.Describe(rv)}");
    }

    private static ManagementObject? QueryOne(ManagementScope scope, string wql)
    {
        using var searcher = new ManagementObjectSearcher(scope, new ObjectQuery(wql));
        using var results = searcher.Get();
        foreach (ManagementObject o in results) return o;
        return null;
    }
}
