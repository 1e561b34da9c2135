namespace DiskSnapshotEngine.Nbd;

// The numbers of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md, section "Values"). Every field on the wire is
// big-endian. Names follow the specification without the NBD_ prefix.

/// <summary>Magic numbers of the handshake and of transmission messages (proto.md "Handshake", "Transmission").</summary>
internal static class NbdMagic
{
    /// <summary>'NBDMAGIC', the first 8 bytes the server sends.</summary>
    public const ulong InitPassword = 0x4e42444d41474943;
    /// <summary>'IHAVEOPT': after INIT_PASSWD (newstyle) and before every client option.</summary>
    public const ulong Option = 0x49484156454F5054;
    /// <summary>Leads every option reply of the fixed newstyle negotiation.</summary>
    public const ulong OptionReply = 0x3e889045565a9;
    /// <summary>NBD_REQUEST_MAGIC.</summary>
    public const uint Request = 0x25609513;
    /// <summary>NBD_SIMPLE_REPLY_MAGIC.</summary>
    public const uint SimpleReply = 0x67446698;
    /// <summary>NBD_STRUCTURED_REPLY_MAGIC.</summary>
    public const uint StructuredReply = 0x668e33ef;
}

/// <summary>Handshake flags (server, 16 bits) and client flags (32 bits) (proto.md "Handshake flags", "Client flags").</summary>
[Flags]
internal enum NbdHandshakeFlags : uint
{
    None = 0,
    /// <summary>NBD_FLAG_FIXED_NEWSTYLE / NBD_FLAG_C_FIXED_NEWSTYLE.</summary>
    FixedNewstyle = 1 << 0,
    /// <summary>NBD_FLAG_NO_ZEROES / NBD_FLAG_C_NO_ZEROES: no 124 zero bytes after NBD_OPT_EXPORT_NAME.</summary>
    NoZeroes = 1 << 1,
}

/// <summary>Transmission flags (16 bits) sent with the export size (proto.md "Transmission flags").</summary>
[Flags]
internal enum NbdTransmissionFlags : ushort
{
    /// <summary>NBD_FLAG_HAS_FLAGS: always set.</summary>
    HasFlags = 1 << 0,
    /// <summary>NBD_FLAG_READ_ONLY.</summary>
    ReadOnly = 1 << 1,
    /// <summary>NBD_FLAG_SEND_FLUSH.</summary>
    SendFlush = 1 << 2,
    /// <summary>NBD_FLAG_SEND_FUA.</summary>
    SendFua = 1 << 3,
    /// <summary>NBD_FLAG_SEND_TRIM.</summary>
    SendTrim = 1 << 5,
    /// <summary>NBD_FLAG_SEND_WRITE_ZEROES (with NBD_CMD_FLAG_NO_HOLE).</summary>
    SendWriteZeroes = 1 << 6,
    /// <summary>NBD_FLAG_SEND_DF: only when structured replies were negotiated.</summary>
    SendDf = 1 << 7,
    /// <summary>NBD_FLAG_CAN_MULTI_CONN: flush and FUA are visible on every connection.</summary>
    CanMultiConn = 1 << 8,
}

/// <summary>Option types of the handshake (proto.md "Option types").</summary>
internal static class NbdOption
{
    public const uint ExportName = 1;
    public const uint Abort = 2;
    public const uint List = 3;
    public const uint StartTls = 5;
    public const uint Info = 6;
    public const uint Go = 7;
    public const uint StructuredReply = 8;
    public const uint ListMetaContext = 9;
    public const uint SetMetaContext = 10;
}

/// <summary>Option reply types; errors have bit 31 set (proto.md "Option reply types").</summary>
internal static class NbdOptionReply
{
    public const uint Ack = 1;
    public const uint Server = 2;
    public const uint Info = 3;
    public const uint MetaContext = 4;
    public const uint ErrUnsupported = 0x80000001;
    public const uint ErrPolicy = 0x80000002;
    public const uint ErrInvalid = 0x80000003;
    public const uint ErrUnknown = 0x80000006;
    public const uint ErrShutdown = 0x80000007;
    public const uint ErrTooBig = 0x80000009;
}

/// <summary>Information types of NBD_REP_INFO (proto.md "NBD_OPT_INFO and NBD_OPT_GO").</summary>
internal static class NbdInfo
{
    public const ushort Export = 0;
    public const ushort Name = 1;
    public const ushort Description = 2;
    public const ushort BlockSize = 3;
}

/// <summary>Request types of the transmission phase (proto.md "Request types").</summary>
internal enum NbdCommand : ushort
{
    /// <summary>NBD_CMD_READ.</summary>
    Read = 0,
    /// <summary>NBD_CMD_WRITE: followed by <c>length</c> bytes of payload.</summary>
    Write = 1,
    /// <summary>NBD_CMD_DISC: soft disconnect, no reply.</summary>
    Disconnect = 2,
    /// <summary>NBD_CMD_FLUSH.</summary>
    Flush = 3,
    /// <summary>NBD_CMD_TRIM.</summary>
    Trim = 4,
    /// <summary>NBD_CMD_CACHE (not advertised; answered EINVAL).</summary>
    Cache = 5,
    /// <summary>NBD_CMD_WRITE_ZEROES.</summary>
    WriteZeroes = 6,
    /// <summary>NBD_CMD_BLOCK_STATUS.</summary>
    BlockStatus = 7,
}

/// <summary>Command flags of a request (proto.md "Command flags").</summary>
[Flags]
internal enum NbdCommandFlags : ushort
{
    /// <summary>No flag.</summary>
    None = 0,
    /// <summary>NBD_CMD_FLAG_FUA: reply only once the data is durable.</summary>
    Fua = 1 << 0,
    /// <summary>NBD_CMD_FLAG_NO_HOLE (WRITE_ZEROES): the range must be provisioned.</summary>
    NoHole = 1 << 1,
    /// <summary>NBD_CMD_FLAG_DF (READ): at most one content chunk.</summary>
    DontFragment = 1 << 2,
    /// <summary>NBD_CMD_FLAG_REQ_ONE (BLOCK_STATUS): one extent only.</summary>
    ReqOne = 1 << 3,
    /// <summary>NBD_CMD_FLAG_FAST_ZERO (not advertised).</summary>
    FastZero = 1 << 4,
}

/// <summary>Structured reply chunk types and flags (proto.md "Structured reply types").</summary>
internal static class NbdChunk
{
    /// <summary>NBD_REPLY_FLAG_DONE: the last chunk of a reply.</summary>
    public const ushort FlagDone = 1;
    public const ushort None = 0;
    public const ushort OffsetData = 1;
    public const ushort OffsetHole = 2;
    public const ushort BlockStatus = 5;
    public const ushort Error = 0x8001;
}

/// <summary>Error values of replies (proto.md "Error values"); 0 is success.</summary>
internal enum NbdError : uint
{
    /// <summary>Success.</summary>
    None = 0,
    /// <summary>NBD_EPERM: a write to a read-only export.</summary>
    Perm = 1,
    /// <summary>NBD_EIO.</summary>
    Io = 5,
    /// <summary>NBD_ENOMEM.</summary>
    NoMemory = 12,
    /// <summary>NBD_EINVAL: unknown command or flag, bad range, oversized request.</summary>
    Invalid = 22,
    /// <summary>NBD_ENOSPC: a write past the end, or the file system is full.</summary>
    NoSpace = 28,
    /// <summary>NBD_EOVERFLOW: a don't-fragment read too large for one chunk.</summary>
    Overflow = 75,
    /// <summary>NBD_ENOTSUP.</summary>
    NotSupported = 95,
    /// <summary>NBD_ESHUTDOWN: the server is stopping.</summary>
    Shutdown = 108,
}

/// <summary>The one metadata context this server knows (proto.md "base:allocation metadata context").</summary>
internal static class NbdMetaContext
{
    public const string BaseAllocation = "base:allocation";
    /// <summary>The id we give base:allocation (any value is allowed; the client treats it as opaque).</summary>
    public const uint BaseAllocationId = 1;
    /// <summary>NBD_STATE_HOLE.</summary>
    public const uint StateHole = 1 << 0;
    /// <summary>NBD_STATE_ZERO.</summary>
    public const uint StateZero = 1 << 1;
}
