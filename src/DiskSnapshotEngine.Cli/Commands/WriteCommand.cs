using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse write IMAGE --offset N --input FILE|-</c>: bytes of a file (or stdin) into the virtual disk.</summary>
internal static class WriteCommand
{
    // Bounded whatever the input size; large enough that the chain writes whole blocks at a time.
    internal const int ChunkSize = 4 << 20;

    public static Command Build()
    {
        var image = CommonOptions.Image("The image to write into (its parents are only read; copy-on-write keeps them unchanged).");
        var offset = SizeParser.Option("--offset", "Where in the virtual disk the input goes: bytes or with a binary unit (4K, 1.5M, 2GB).", allowZero: true, helpName: "N");
        offset.Required = true;
        var input = new Option<string>("--input")
        {
            Description = "The file whose bytes are written, or - for stdin (streamed, any length).",
            HelpName = "FILE",
            Required = true,
        };
        var json = CommonOptions.Json();
        var force = new Option<bool>("--force")
        {
            Description = "Write even when the image is sealed or other images are differencing children of it (they will no longer open without --ignore-parent-mismatch, and would read changed data).",
        };
        var command = new Command("write", "Write the bytes of a file (or stdin) into an image's virtual disk at an offset.")
        {
            image, offset, input, json, force,
        };
        var chainOptions = ChainOptions.AddTo(command);

        VerbAction.Set(command, context => Run(context, context.Get(image)!, context.Get(offset)!.Value, context.Get(input)!, context.Get(force),
            writable => chainOptions.ToOpenOptions(context.Parse, writable)));
        return command;
    }

    /// <summary><c>dse write IMAGE --offset N --input FILE</c> with no option but --force and the common flags, without the parser.</summary>
    public static DirectRun? Direct(string[] args) =>
        DirectArgs.Read(args, 1, ["--force"], ["--offset", "--input"]) is { } a && a.Value("--input") is { } input &&
        a.Value("--offset") is not null && DirectRun.TrySize(a.Value("--offset"), out long? offset, allowZero: true)
            ? new DirectRun(a, context => Run(context, a.Arguments[0], offset!.Value, input, a.Flag("--force"), DirectRun.NoChainOptions))
            : null;

    private static async Task<int> Run(CliContext context, string path, long at, string inputPath, bool force, Func<bool, OpenOptions> chainOpen)
    {
        using var source = OpenInput(context, inputPath);
        using var chain = DiskImage.Open(path, chainOpen(true) with
        {
            RefuseWriteWithChildren = !force,
            Sealed = force ? Block.SealPolicy.Override : Block.SealPolicy.Refuse,
        });

        // A regular file's length is known: refuse before writing anything rather than fail half-way.
        if (source.CanSeek && (at > chain.VirtualSize || source.Length > chain.VirtualSize - at))
            throw new DiskImageException(ErrorKind.OutOfBounds,
                $"writing {source.Length} bytes at offset {at} goes past the end of the virtual disk ({chain.VirtualSize} bytes)", chain.Top.Path);

        // A managed buffer, not a pooled native one: a read from a pipe or terminal cannot be interrupted, so on
        // Ctrl-C it is abandoned (WaitAsync) and may still complete into this buffer later.
        var buffer = new byte[ChunkSize];
        // Stdin's length is unknown: its progress counts bytes against the rest of the disk.
        long total = source.CanSeek ? source.Length : chain.VirtualSize - at;
        long written = await ProgressDisplay.RunAsync(context, "write", async progress =>
        {
            long done = 0;
            while (true)
            {
                // A file is read here (it does not block for long); only a pipe's read is left behind on Ctrl-C.
                int n = source.CanSeek ? source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false)
                    : await Task.Run(() => source.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false))
                        .WaitAsync(context.CancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                context.CancellationToken.ThrowIfCancellationRequested();
                chain.Write(at + done, buffer.AsSpan(0, n));
                done += n;
                progress?.Report(new OperationProgress("copy", done, total));
                if (n < buffer.Length) break;
            }
            chain.Flush();
            return done;
        }).ConfigureAwait(false);
        context.Result(new WriteView(chain.Top.Path, at, written),
            $"wrote {written} bytes at offset {at} into {chain.Top.Path}");
        return ExitCodes.Ok;
    }

    private static Stream OpenInput(CliContext context, string path)
    {
        if (path == "-") return context.Host.OpenStdin();
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new DiskImageException(ErrorKind.FileNotFound, "the input path is a directory, not a file", full);
        try
        {
            return new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw DiskImageException.FromOsError(e, full, "open the input");
        }
    }

    /// <summary>The --json document of write.</summary>
    internal sealed record WriteView(string Image, long Offset, long BytesWritten);
}
