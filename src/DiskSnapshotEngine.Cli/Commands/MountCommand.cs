using System.CommandLine;
using System.ComponentModel;
using System.Diagnostics;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Nbd;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary>
/// <c>dse mount IMAGE DIR</c>: the virtual disk as a file DIR/NAME.raw, by serving it on a private unix socket and
/// handing that to nbdfuse (libnbd-bin), which mounts it through FUSE. dse does no FUSE itself: without nbdfuse it says so.
/// </summary>
internal static class MountCommand
{
    private const string Tool = "nbdfuse";

    public static Command Build()
    {
        var image = CommonOptions.Image("The image to mount, with its parents (they are only read: writes go to IMAGE, copy-on-write).");
        var mountPoint = new Argument<string>("DIR") { Description = "An existing empty directory; the disk appears in it as NAME.raw." };
        var readOnly = new Option<bool>("--read-only") { Description = "Mount read-only (shared locks: other readers may open the image too)." };
        var command = new Command("mount",
            "Show the virtual disk (the whole chain) as a raw file in DIR through nbdfuse (libnbd-bin) and FUSE, until SIGINT/SIGTERM " +
            "or until DIR is unmounted (fusermount3 -u DIR); then the image is flushed. Partitions: losetup -P the file.")
        {
            image, mountPoint, readOnly,
        };
        var chainOptions = ChainOptions.AddTo(command);

        VerbAction.Set(command, async context =>
        {
            string dir = Path.GetFullPath(context.Get(mountPoint)!);
            string nbdfuse = ProcessCommandRunner.FindOnPath(Tool)
                ?? throw new DiskImageException(ErrorKind.ExternalTool,
                    "dse mount drives nbdfuse, which is not installed (apt-get install libnbd-bin); without it, run 'dse serve' and connect an NBD client (qemu-nbd -c, nbd-client, qemu)");
            if (!Directory.Exists(dir))
                throw new DiskImageException(ErrorKind.FileNotFound, WhyNotAMountPoint(dir), dir);
            bool writable = !context.Get(readOnly);
            var open = chainOptions.ToOpenOptions(context.Parse, writable) with { RefuseWriteWithChildren = writable };
            using var chain = DiskImage.Open(context.Get(image)!, open);
            string name = Path.GetFileNameWithoutExtension(chain.Top.Path) + ".raw";

            // The socket lives in a folder only this user can enter: the export is for nbdfuse alone.
            string socketDir = Directory.CreateTempSubdirectory("dse-mount-").FullName;
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(socketDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            try
            {
                var options = new NbdServerOptions
                {
                    SocketPath = Path.Combine(socketDir, "nbd.sock"),
                    Log = context.Note,
                };
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
                using (var server = NbdServer.Listen(chain, options))
                {
                    var serving = server.RunAsync(stop.Token);
                    try
                    {
                        await RunNbdfuse(context, nbdfuse, chain.Top.Path, Path.Combine(dir, name), server.SocketPath!, !writable).ConfigureAwait(false);
                    }
                    finally
                    {
                        stop.Cancel();
                        await serving.ConfigureAwait(false);
                    }
                }
                chain.Flush();
                context.Note($"unmounted {dir}; the image is flushed");
                return ExitCodes.Ok;
            }
            finally
            {
                try { Directory.Delete(socketDir, recursive: true); }
                catch (IOException) { }
            }
        });
        return command;
    }

    // nbdfuse stays in the foreground until the mount is gone; a signal to dse unmounts it.
    private static async Task RunNbdfuse(CliContext context, string nbdfuse, string image, string file, string socket, bool readOnly)
    {
        var psi = new ProcessStartInfo(nbdfuse) { UseShellExecute = false, RedirectStandardError = true };
        if (readOnly) psi.ArgumentList.Add("-r");
        foreach (var a in new[] { file, "--unix", socket }) psi.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(psi)!; }
        catch (Win32Exception e)
        {
            throw new DiskImageException(ErrorKind.ExternalTool, $"could not start {nbdfuse}: {e.Message}", inner: e);
        }
        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            var exited = process.WaitForExitAsync(CancellationToken.None);
            // The file appears once FUSE has mounted; nbdfuse exiting first means it could not mount.
            while (!File.Exists(file) && !exited.IsCompleted) await Task.WhenAny(exited, Task.Delay(50)).ConfigureAwait(false);
            if (exited.IsCompleted)
                throw new DiskImageException(ErrorKind.ExternalTool,
                    $"nbdfuse exited with {process.ExitCode} before mounting: {FirstLine(await stderr.ConfigureAwait(false))}", Path.GetDirectoryName(file));
            context.Result(new MountView(image, file, readOnly),
                $"mounted {file} ({(readOnly ? "read-only" : "read-write")}); unmount with: fusermount3 -u {ExternalCommand.ShellQuote(Path.GetDirectoryName(file)!)} (or Ctrl-C here)");
            context.Out.Flush();
            try { await exited.WaitAsync(context.CancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException)
            {
                // Ctrl-C in a terminal (or timeout(1)) signals the whole process group: nbdfuse then unmounts by itself.
                if (await Task.WhenAny(exited, Task.Delay(1000)).ConfigureAwait(false) != exited) TryUnmount(Path.GetDirectoryName(file)!);
                try { await exited.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false); }
                catch (TimeoutException)
                {
                    process.Kill();
                    throw new DiskImageException(ErrorKind.ExternalTool, "nbdfuse did not end after the unmount (tried fusermount3 -u, fusermount -u, umount); killed it", Path.GetDirectoryName(file));
                }
            }
            var rest = await stderr.ConfigureAwait(false);
            if (!string.IsNullOrWhiteSpace(rest)) context.Error.Write(rest);
        }
    }

    // File.Exists is true for a symbolic link whose target is gone, which is not a file either: the link is named as one.
    private static string WhyNotAMountPoint(string dir)
    {
        var entry = new FileInfo(dir);
        if (entry.LinkTarget is { } target && entry.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true })
            return $"the mount point is a dangling symbolic link (to {target}, which does not exist)";
        return entry.Exists ? "the mount point is not a directory" : "the mount point does not exist";
    }

    private static void TryUnmount(string dir)
    {
        foreach (var tool in new[] { "fusermount3", "fusermount", "umount" })
        {
            if (!ProcessCommandRunner.Instance.IsAvailable(tool)) continue;
            var r = ProcessCommandRunner.Instance.Run(tool == "umount" ? ExternalCommand.Of(tool, dir) : ExternalCommand.Of(tool, "-u", dir), TimeSpan.FromSeconds(30));
            if (r.ExitCode == 0) return;
        }
    }

    private static string FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "no message";

    /// <summary>The --json document of mount.</summary>
    internal sealed record MountView(string Image, string File, bool ReadOnly);
}
