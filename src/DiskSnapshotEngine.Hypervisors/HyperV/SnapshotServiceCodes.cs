namespace DiskSnapshotEngine.Hypervisors.HyperV;

/// <summary>
/// Return values of <c>Msvm_VirtualSystemSnapshotService.CreateSnapshot</c> and states of the <c>Msvm_ConcreteJob</c>
/// it starts, as the Hyper-V WMI v2 provider documents them, turned into messages a user can act on.
/// Kept free of System.Management so it is tested on every platform.
/// </summary>
public static class SnapshotServiceCodes
{
    /// <summary>Completed with no error.</summary>
    public const uint Completed = 0;

    /// <summary>Method parameters checked, job started: wait on the returned Msvm_ConcreteJob.</summary>
    public const uint JobStarted = 4096;

    /// <summary>SnapshotType for a full snapshot (2 = Full Snapshot; 32768 = Recovery).</summary>
    public const ushort FullSnapshot = 2;

    /// <summary>A one-line explanation of a CreateSnapshot return value.</summary>
    public static string Describe(uint returnValue) => returnValue switch
    {
        0 => "completed",
        1 => "not supported: this host or VM cannot take this kind of snapshot",
        2 => "failed (the Hyper-V event log, Hyper-V-VMMS Admin, has the reason)",
        3 => "timed out",
        4 => "invalid parameter: the VM or snapshot settings passed are not valid",
        5 => "invalid state: the VM is in a state that does not allow a snapshot now (starting, stopping, or another operation is running)",
        6 => "invalid type: the snapshot type is not supported for this VM",
        4096 => "job started",
        4097 => "method reserved",
        >= 32768 and <= 65535 => $"vendor-specific error {returnValue}",
        _ => $"unknown return value {returnValue}",
    };

    /// <summary>Msvm_ConcreteJob.JobState values (CIM_ConcreteJob).</summary>
    public enum JobState : ushort
    {
        /// <summary>Not started.</summary>
        New = 2,
        /// <summary>Starting.</summary>
        Starting = 3,
        /// <summary>Running.</summary>
        Running = 4,
        /// <summary>Suspended.</summary>
        Suspended = 5,
        /// <summary>Shutting down.</summary>
        ShuttingDown = 6,
        /// <summary>Completed successfully.</summary>
        Completed = 7,
        /// <summary>Terminated by request.</summary>
        Terminated = 8,
        /// <summary>Killed.</summary>
        Killed = 9,
        /// <summary>Ended with an error (ErrorCode/ErrorDescription say which).</summary>
        Exception = 10,
        /// <summary>Service: recurring job.</summary>
        Service = 11,
        /// <summary>Query pending.</summary>
        QueryPending = 12,
    }

    /// <summary>True once a job will not change state any more.</summary>
    public static bool IsFinished(ushort state) => state is (ushort)JobState.Completed or (ushort)JobState.Terminated
        or (ushort)JobState.Killed or (ushort)JobState.Exception or (ushort)JobState.Service;

    /// <summary>
    /// Escapes a string for a WQL string literal in single quotes: a backslash and a quote are each preceded by a backslash.
    /// </summary>
    public static string WqlString(string value) =>
        "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
