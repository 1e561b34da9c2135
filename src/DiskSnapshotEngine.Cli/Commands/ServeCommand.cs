using System.CommandLine;
using System.Globalization;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Nbd;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>dse serve IMAGE [--socket PATH | --port N [--bind ADDR]] [--read-only] [--export-name NAME] [--json]</c>: the whole
/// chain as one NBD export, so QEMU, libvirt, qemu-img and the libnbd tools read (and write) what only dse can open.
/// </summary>
internal static class ServeCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The image to serve, with its parents (they are only read: writes go to IMAGE, copy-on-write).");
        var socket = new Option<string>("--socket") { Description = "Listen on this unix socket (created now, removed at exit) instead of TCP.", HelpName = "PATH" };
        var port = new Option<int?>("--port") { Description = $"TCP port to listen on (default {NbdServerOptions.DefaultPort}; 0 picks a free one).", HelpName = "N" };
        var bind = new Option<string>("--bind") { Description = "TCP address to listen on (default 127.0.0.1: NBD has no authentication).", HelpName = "ADDR" };
        var readOnly = new Option<bool>("--read-only") { Description = "Serve read-only (shared locks: other readers may open the image too)." };
        var exportName = new Option<string>("--export-name") { Description = "Name of the export (clients asking for the default export get it too).", HelpName = "NAME" };
        var json = new Option<bool>(CommandCatalog.JsonOption) { Description = "Print where the server listens as one line of JSON." };
        var command = new Command("serve",
            "Serve the virtual disk (the whole chain) over NBD until SIGINT/SIGTERM, which stop it cleanly after flushing. " +
            "Writes go to IMAGE with copy-on-write, exactly as 'dse write'.")
        {
            image, socket, port, bind, readOnly, exportName, json,
        };
        var chainOptions = ChainOptions.AddTo(command, internalSnapshot: true);

        VerbAction.Set(command, async context =>
        {
            string? socketPath = context.Get(socket);
            if (socketPath is not null && (context.Get(port) is not null || context.Get(bind) is not null))
                throw new UsageException("--socket cannot be combined with --port or --bind");
            bool writable = !context.Get(readOnly);
            if (writable && chainOptions.InternalSnapshot is { } snapshot && context.Get(snapshot) is not null)
                throw new UsageException("--internal-snapshot needs --read-only (a snapshot is only read)");
            var open = chainOptions.ToOpenOptions(context.Parse, writable) with { RefuseWriteWithChildren = writable };
            using var chain = OpenServed(context.Get(image)!, open);
            var options = new NbdServerOptions
            {
                SocketPath = socketPath is null ? null : Path.GetFullPath(socketPath),
                Port = context.Get(port) ?? NbdServerOptions.DefaultPort,
                BindAddress = context.Get(bind) ?? "127.0.0.1",
                ExportName = context.Get(exportName) ?? "",
                Log = context.Note,
            };
            using (var server = NbdServer.Listen(chain, options))
            {
                Announce(context, chain.Top.Path, server, options, context.Get(json));
                await server.RunAsync(context.CancellationToken).ConfigureAwait(false);
            }
            // Every reply already sent for a write stands; the flush makes the rest of the top layer's state durable.
            chain.Flush();
            context.Note("stopped serving; the image is flushed");
            return ExitCodes.Ok;
        });
        return command;
    }

    // An image this user may not write, a sealed golden or one with children can still be served to readers.
    private static DiskChain OpenServed(string image, OpenOptions open)
    {
        try { return DiskImage.Open(image, open); }
        catch (DiskImageException e) when (open.Writable && e.Kind == ErrorKind.ReadOnly)
        {
            throw new DiskImageException(e.Kind, $"{e.Detail}; 'dse serve --read-only' serves it without writing to it", e.Path, e.Structure, e.FileOffset, e);
        }
    }

    private static void Announce(CliContext context, string image, NbdServer server, NbdServerOptions options, bool json)
    {
        if (json)
        {
            context.Out.WriteLine(Output.Json.OneLineOf(new ServeView(image, server.Uri, server.SocketPath,
                server.SocketPath is null ? options.BindAddress : null, server.Port, options.ExportName, server.ReadOnly, server.Size)));
        }
        else
        {
            string mode = server.ReadOnly ? "read-only" : "read-write";
            context.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"serving {image} ({SizeParser.Describe(server.Size)}, {mode}) at {server.Uri}"));
        }
        context.Out.Flush();
    }

    /// <summary>serve's --json announcement, one line.</summary>
    internal sealed record ServeView(string Image, string Uri, string? Socket, string? Address, int? Port, string ExportName, bool ReadOnly, long Size);
}
