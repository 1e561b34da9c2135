using System.Diagnostics;
using DiskSnapshotEngine.Cli;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>What one run of dse produced.</summary>
public sealed record CliResult(int ExitCode, string StdOut, string StdErr, byte[] StdOutBytes)
{
    public override string ToString() => $"exit {ExitCode}\nstdout: {StdOut}\nstderr: {StdErr}";
}

/// <summary>Runs dse in-process (fast; most tests) or as a real process (exit codes, pipes, signals).</summary>
public static class CliRunner
{
    /// <summary>Calls the CLI entry point with in-memory streams.</summary>
    public static async Task<CliResult> RunAsync(params string[] args) => await RunWithStdinAsync(null, args);

    /// <summary>Runs dse in-process and asserts exit 0 (the failure message shows the command and its output).</summary>
    public static async Task<CliResult> OkAsync(params string[] args)
    {
        var r = await RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>The root of <c>dse info IMAGE --json</c>.</summary>
    public static async Task<System.Text.Json.JsonElement> InfoAsync(string image) =>
        System.Text.Json.JsonDocument.Parse((await OkAsync("info", image, "--json")).StdOut).RootElement;

    /// <summary>
    /// The golden-image lab of issue 10: <c>templates/golden.EXT</c> of <paramref name="size"/> holding
    /// <paramref name="dataLength"/> bytes of <see cref="Infrastructure.RandomData"/> (<paramref name="seed"/>) written
    /// through <c>dse write</c> from <c>g.bin</c>, and the folder <c>vms/a/</c> for its clone <c>lab1.EXT</c> (not made).
    /// </summary>
    public static async Task<(string Golden, string Clone)> GoldenLabAsync(Infrastructure.TempDirectory dir, string ext,
        string size, int dataLength, int seed)
    {
        Directory.CreateDirectory(dir.File("templates"));
        Directory.CreateDirectory(dir.File("vms/a"));
        string golden = dir.File($"templates/golden.{ext}"), clone = dir.File($"vms/a/lab1.{ext}");
        await File.WriteAllBytesAsync(dir.File("g.bin"), Infrastructure.RandomData.Bytes(dataLength, seed));
        await OkAsync("create", golden, "--size", size);
        await OkAsync("write", golden, "--offset", "0", "--input", dir.File("g.bin"));
        return (golden, clone);
    }

    public static Task<CliResult> RunWithStdinAsync(byte[]? stdin, params string[] args) => RunInProcessAsync(stdin, false, args);

    /// <summary>As <see cref="RunWithStdinAsync"/>, always through the command-line parser (never a direct path such as DirectRun).</summary>
    public static Task<CliResult> RunParsedAsync(byte[]? stdin, params string[] args) => RunInProcessAsync(stdin, false, args, parsed: true);

    /// <summary>As <see cref="RunAsync"/>, with stderr taken for a terminal (progress is shown there).</summary>
    public static Task<CliResult> RunWithTerminalStderrAsync(params string[] args) => RunInProcessAsync(null, true, args);

    private static async Task<CliResult> RunInProcessAsync(byte[]? stdin, bool errorIsTerminal, string[] args, bool parsed = false)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var stdout = new MemoryStream();
        var host = new CliHost
        {
            Out = output,
            Error = error,
            OpenStdin = () => new MemoryStream(stdin ?? Array.Empty<byte>(), writable: false),
            OpenStdout = () => stdout,
            OutputIsTerminal = false,
            ErrorIsTerminal = errorIsTerminal,
        };
        int code = await (parsed ? CliApp.RunParsedAsync(args, host, null) : CliApp.RunAsync(args, host));
        return new CliResult(code, output.ToString(), error.ToString(), stdout.ToArray());
    }

    /// <summary>The built dse.dll next to the tests (the test project references the CLI project).</summary>
    public static string DsePath => Path.Combine(AppContext.BaseDirectory, "dse.dll");

    /// <summary>
    /// The Native AOT dse that tests/run.sh publishes with the default <c>dotnet publish</c> (what users and the benchmarks
    /// run), named by DSE_AOT; null when the tests run alone (<c>dotnet test</c>).
    /// </summary>
    public static string? AotPath { get; } = Environment.GetEnvironmentVariable("DSE_AOT") is { Length: > 0 } p ? Path.GetFullPath(p) : null;

    /// <summary>
    /// How the process tests start dse: the Native AOT binary when there is one (<see cref="AotPath"/>), else
    /// <c>dotnet dse.dll</c>; the program first, then its first arguments.
    /// </summary>
    public static string[] ProcessCommand => AotPath is { } aot ? [aot] : JitCommand;

    /// <summary>The JIT build as a process: <c>dotnet dse.dll</c>.</summary>
    public static string[] JitCommand => [Infrastructure.ExternalTool.Find("dotnet") ?? "dotnet", DsePath];

    /// <summary>Starts dse (<see cref="ProcessCommand"/>) with redirected streams.</summary>
    public static Process Start(params string[] args) => StartWith(ProcessCommand, null, args);

    /// <summary>
    /// Starts dse with its copy loop slowed by the DSE_TEST_PIECE_DELAY_MS failpoint, so that a test can be sure the
    /// operation is still running when it sends a signal.
    /// </summary>
    public static Process StartSlowed(int pieceDelayMs, params string[] args) =>
        StartWith(ProcessCommand, new Dictionary<string, string> { ["DSE_TEST_PIECE_DELAY_MS"] = pieceDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture) }, args);

    private static Process StartWith(string[] command, IReadOnlyDictionary<string, string>? environment, string[] args)
    {
        var psi = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in command.Skip(1).Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment.Remove("DSE_DEBUG");
        psi.Environment.Remove("DSE_TEST_PIECE_DELAY_MS");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) psi.Environment[key] = value;
        return Process.Start(psi)!;
    }

    /// <summary>Runs dse as the user nobody (uid 65534, through setpriv; the caller must be root), as a lab user without privileges.</summary>
    public static (int ExitCode, string StdOut, string StdErr) RunAsNobody(params string[] args) =>
        Infrastructure.ExternalTool.Run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Infrastructure.ExternalTool.Find("dotnet") ?? "dotnet", DsePath, .. args]);

    /// <summary>Runs dse as a real process, feeding <paramref name="stdin"/> and capturing stdout as bytes.</summary>
    public static Task<CliResult> RunProcessAsync(byte[]? stdin, params string[] args) => RunProcessAsync(ProcessCommand, stdin, args);

    /// <summary>As <see cref="RunProcessAsync(byte[], string[])"/>, started by <paramref name="command"/> (program and first arguments).</summary>
    public static async Task<CliResult> RunProcessAsync(string[] command, byte[]? stdin, params string[] args)
    {
        using var p = StartWith(command, null, args);
        var stdout = new MemoryStream();
        var copyOut = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var readErr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.BaseStream.WriteAsync(stdin);
        p.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(timeout.Token);
        await copyOut;
        var bytes = stdout.ToArray();
        return new CliResult(p.ExitCode, System.Text.Encoding.UTF8.GetString(bytes), await readErr, bytes);
    }
}
