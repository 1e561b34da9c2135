using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The Native AOT dse (what the default <c>dotnet publish</c> makes: what users and the benchmarks run) against the JIT
/// build of the same code as a process (<c>dotnet dse.dll</c>). Every line that DirectRunTests and JsonSchemaTests pin
/// runs once through each, on the same set-up in two folders: exit code, stdout (its bytes for <c>export -</c>) and
/// stderr must be the same, the folder, the program's own path, fresh ids and times aside. Signals, pipes, serve and full
/// or closed streams are the process tests', which run this binary when tests/run.sh provides it (CliRunner.ProcessCommand).
/// </summary>
public sealed partial class AotBinaryTests
{
    [GeneratedRegex(@"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")]
    private static partial Regex Time();

    // Fresh ids written without dashes (a snapshot's layer name, a sole clone's key), and the hash of a file holding some.
    [GeneratedRegex("(?<![0-9A-Za-z])([0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{12})(?![0-9A-Za-z])")]
    private static partial Regex Hex();

    /// <summary>The lines of DirectRunTests' theories (read from their attributes, so a line added there runs here too), with their set-up.</summary>
    public static TheoryData<string, string[]> DirectRunLines()
    {
        var data = new TheoryData<string, string[]>();
        foreach (var (method, setUp) in new[]
        {
            (nameof(DirectRunTests.Version_json_is_the_parsers), "none"),
            (nameof(DirectRunTests.A_plain_line_runs_without_the_parser_with_the_parsers_result), "image"),
            (nameof(DirectRunTests.A_plain_line_on_a_chain_runs_without_the_parser_with_the_parsers_result), "chain"),
            (nameof(DirectRunTests.Any_other_line_goes_through_the_parser), "image"),
        })
        {
            var info = typeof(DirectRunTests).GetMethod(method)!;
            foreach (var row in info.GetCustomAttributes<InlineDataAttribute>().SelectMany(a => a.GetData(info)))
                data.Add(setUp, row.Cast<string>().ToArray());
        }
        return data;
    }

    [AotTheory]
    [MemberData(nameof(DirectRunLines))]
    public async Task A_line_direct_run_pins_gives_the_jit_result(string setUp, string[] line)
    {
        Func<Func<string, string>, Task> make = setUp switch
        {
            "image" => DirectRunTests.Image,
            "chain" => DirectRunTests.Child,
            _ => DirectRunTests.Nothing,
        };
        using var a = new TempDirectory("aot-jit");
        using var b = new TempDirectory("aot-native");
        await make(a.File);
        await make(b.File);
        string[] In(TempDirectory dir) => line.Select(w => w.StartsWith("D/", StringComparison.Ordinal) ? dir.File(w[2..]) : w).ToArray();
        // Stdin only for a line that reads it: a process that does not read it would end the pipe under the writer.
        int input = Array.IndexOf(line, "--input");
        bool readsStdin = input >= 0 && input + 1 < line.Length && line[input + 1] == "-";
        byte[]? stdin = readsStdin ? DirectRunTests.Stdin : null;
        AssertSame(a, await CliRunner.RunProcessAsync(CliRunner.JitCommand, stdin, In(a)), b, await CliRunner.RunProcessAsync(stdin, In(b)), line);
    }

    [AotTheory]
    [InlineData("vhdx", false)]
    [InlineData("vhdx", true)]
    [InlineData("vdi", false)]
    [InlineData("vdi", true)]
    public async Task Every_verb_json_schema_pins_gives_the_jit_result(string ext, bool json)
    {
        using var a = new TempDirectory("aot-jit");
        using var b = new TempDirectory("aot-native");
        var runsA = await JsonSchemaTests.Scenario(a, ext);
        var runsB = await JsonSchemaTests.Scenario(b, ext);
        string[] flag = json ? ["--json"] : [];
        for (int i = 0; i < runsA.Count; i++)
        {
            var jit = await CliRunner.RunProcessAsync(CliRunner.JitCommand, null, [.. runsA[i].Args, .. flag]);
            var native = await CliRunner.RunProcessAsync(null, [.. runsB[i].Args, .. flag]);
            Assert.True(jit.ExitCode == 0, $"dse {string.Join(' ', runsA[i].Args)}: {jit}");
            AssertSame(a, jit, b, native, [.. runsA[i].Args, .. flag]);
        }
    }

    /// <summary>The binary the process tests run is native code, with no managed dse.dll beside it for a runtime to load.</summary>
    [AotFact]
    public void The_binary_is_native_code()
    {
        var head = new byte[4];
        using (var f = File.OpenRead(CliRunner.AotPath!)) f.ReadExactly(head);
        Assert.Equal("\u007fELF"u8.ToArray(), head);
        Assert.False(File.Exists(Path.Combine(Path.GetDirectoryName(CliRunner.AotPath)!, "dse.dll")), "a dse.dll beside the binary: not a Native AOT publish");
        Assert.Equal([CliRunner.AotPath!], CliRunner.ProcessCommand);
    }

    /// <summary>The progress bar (Spectre.Console, shown only when stderr is a terminal) runs in the AOT binary: under a pseudo-terminal.</summary>
    [AotFact]
    public async Task Progress_shows_on_a_terminal()
    {
        using var dir = new TempDirectory("aot-progress");
        await CliRunner.OkAsync("create", dir.File("s.vhdx"), "--size", "64M");
        await File.WriteAllBytesAsync(dir.File("in.bin"), RandomData.Bytes(40 << 20, 5));
        await CliRunner.OkAsync("write", dir.File("s.vhdx"), "--offset", "0", "--input", dir.File("in.bin"));
        // script(1) gives the command a terminal for stdin, stdout and stderr, and copies what it shows to our stdout.
        var psi = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var w in new[] { "-qec", $"'{CliRunner.AotPath}' clone '{dir.File("s.vhdx")}' '{dir.File("o.vdi")}'", "/dev/null" }) psi.ArgumentList.Add(w);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string shown = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}: {shown} {await stderr}");
        Assert.Contains("clone: cloning", shown);
        Assert.Contains("100%", shown);
        Assert.Contains($"cloned {dir.File("s.vhdx")} to {dir.File("o.vdi")}", shown);
        Assert.Equal(0, (await CliRunner.RunAsync("compare", dir.File("s.vhdx"), dir.File("o.vdi"))).ExitCode);
    }

    // The program's own path where dse names itself (vm register libvirt's unit: ExecStart), plain or JSON-escaped.
    [GeneratedRegex(@"[^\s""\\]*/dotnet\\?"" \\?""[^\s""\\]*/dse\.dll")]
    private static partial Regex JitSelf();

    private static void AssertSame(TempDirectory a, CliResult jit, TempDirectory b, CliResult native, string[] line)
    {
        // The folder as written, and as a VHDX's Windows-style parent locator entry writes it (also JSON-escaped); the
        // program; fresh ids; times.
        string Same(string text, TempDirectory dir)
        {
            string windows = dir.Path.Replace('/', '\\');
            text = text.Replace(dir.Path, "D", StringComparison.Ordinal).Replace(windows, "D", StringComparison.Ordinal)
                .Replace(windows.Replace("\\", "\\\\", StringComparison.Ordinal), "D", StringComparison.Ordinal);
            text = JitSelf().Replace(text, "DSE").Replace(CliRunner.AotPath!, "DSE", StringComparison.Ordinal);
            return Hex().Replace(Time().Replace(DirectRunTests.Guid().Replace(text, "GUID"), "TIME"), "HEX");
        }
        string what = $"dse {string.Join(' ', line)}:\njit {jit}\nnative {native}";
        Assert.True(jit.ExitCode == native.ExitCode, what);
        // Bytes on stdout (export -) are compared as they are; text with its folders and ids as above.
        if (!jit.StdOutBytes.AsSpan().SequenceEqual(native.StdOutBytes)) Assert.Equal(Same(jit.StdOut, a), Same(native.StdOut, b));
        Assert.Equal(Same(jit.StdErr, a), Same(native.StdErr, b));
    }
}
