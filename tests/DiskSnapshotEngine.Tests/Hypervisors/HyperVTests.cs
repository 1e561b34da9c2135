using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.HyperV;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>
/// Hyper-V cannot run on this Linux machine: these tests read the emitted PowerShell back with an independent
/// tokenizer of PowerShell's single-quoted literals, and fake powershell.exe only to see what would be started.
/// </summary>
public class HyperVTests
{
    private const string NastyPath = "C:\\VMs\\It's a disk\\Zoë’s “new” $env:TEMP `n ‘x‛ ‚y.vhdx";

    private static VmDiskState Vhdx(string path)
    {
        var m = new MediumInfo(Guid.NewGuid(), path, MediumFormats.Vhdx, 1L << 30, Array.Empty<MediumInfo>());
        return new VmDiskState(m, m.Id, Array.Empty<SnapshotInfo>(), null);
    }

    [Fact]
    public void Register_script_quotes_a_path_with_spaces_apostrophes_and_non_ASCII_so_it_parses_back_exactly()
    {
        // Paths are absolute on the machine running the tests; the value itself is what matters to PowerShell.
        var path = OperatingSystem.IsWindows() ? NastyPath : "/vms/It's a disk/Zoë’s “new” $env:TEMP `n ‘x‛ ‚y.vhdx";
        var script = HyperVScript.Register(new HyperVVmSpec("Zoë's VM", 1, 2048), Vhdx(path));

        var newVm = Tokens(Line(script, "New-VM"));
        Assert.Equal(new[] { "New-VM", "-Name", "Zoë's VM", "-Generation", "1", "-MemoryStartupBytes", "2147483648", "-NoVHD", "|", "Out-Null" }, newVm);
        var add = Tokens(Line(script, "Add-VMHardDiskDrive"));
        Assert.Equal(new[] { "Add-VMHardDiskDrive", "-VMName", "Zoë's VM", "-ControllerType", "IDE", "-ControllerNumber", "0", "-ControllerLocation", "0", "-Path", path }, add);
        Assert.Equal(new[] { "Remove-VM", "-Name", "Zoë's VM", "-Force" }, Tokens(Line(script, "Remove-VM")));
        Assert.DoesNotContain("Set-VMFirmware", script); // generation 1 boots from IDE 0:0 already
    }

    [Fact]
    public void Generation_2_attaches_to_SCSI_and_boots_from_the_disk()
    {
        var script = HyperVScript.Register(new HyperVVmSpec("g2"), Vhdx("/d/disk.vhdx"));
        Assert.Contains("SCSI", Tokens(Line(script, "Add-VMHardDiskDrive")));
        Assert.Equal("Set-VMFirmware -VMName 'g2' -FirstBootDevice (Get-VMHardDiskDrive -VMName 'g2')", Line(script, "Set-VMFirmware"));
    }

    [Fact]
    public void Checkpoint_names_survive_quoting()
    {
        var script = HyperVScript.Checkpoint("a'b", "before ‘update’ $x");
        Assert.Equal(new[] { "Checkpoint-VM", "-Name", "a'b", "-SnapshotName", "before ‘update’ $x" }, Tokens(Line(script, "Checkpoint-VM")));
        Assert.Equal(new[] { "Checkpoint-VM", "-Name", "vm" }, Tokens(Line(HyperVScript.Checkpoint("vm", null), "Checkpoint-VM")));
    }

    [Fact]
    public void Any_string_quoted_as_a_literal_tokenizes_back_to_itself()
    {
        var quoteHeavy = Gen.Elements('\'', '‘', '’', '‚', '‛', '"', '$', '`', ' ', 'é', 'a', '\\', '\t', '字');
        var arb = Gen.ArrayOf(Gen.OneOf(quoteHeavy, ArbMap.Default.GeneratorFor<char>())).Select(cs => new string(cs)).ToArbitrary();
        Prop.ForAll(arb, s => Tokens("X " + PowerShellLiteral.Quote(s) + " Y").SequenceEqual(new[] { "X", s, "Y" }))
            .QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Encoded_command_is_base64_of_the_UTF16LE_script()
    {
        var script = HyperVScript.Checkpoint("Zoë", "n");
        var cmd = HyperVScript.Command(script);
        Assert.Equal("powershell.exe", cmd.Program);
        Assert.Equal("-EncodedCommand", cmd.Arguments[^2]);
        Assert.Equal(script, Encoding.Unicode.GetString(Convert.FromBase64String(cmd.Arguments[^1])));
    }

    [Fact]
    public void A_VDI_is_refused_for_Hyper_V_with_the_conversion_to_run()
    {
        var m = new MediumInfo(Guid.NewGuid(), "/d/disk.vdi", MediumFormats.Vdi, 1L << 30, Array.Empty<MediumInfo>());
        var e = Assert.Throws<DiskImageException>(() =>
            HyperVScript.Register(new HyperVVmSpec("x"), new VmDiskState(m, m.Id, Array.Empty<SnapshotInfo>(), null)));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("dse clone /d/disk.vdi /d/disk.vhdx", e.Message);
    }

    [Fact]
    public void Off_Windows_the_script_is_returned_and_nothing_runs()
    {
        var runner = new FakeCommandRunner(new[] { "powershell.exe" });
        var r = new HyperVRegistrar(runner, isWindows: false).Register(new HyperVVmSpec("vm"), Vhdx("/d/a.vhdx"), dryRun: false);
        Assert.False(r.Ran);
        Assert.Contains("only on Windows", r.Notice);
        Assert.Contains("New-VM", r.Script);
        Assert.Empty(runner.Ran);
    }

    // powershell.exe with Hyper-V cannot run here: the fake stands in for it on a pretend Windows host.
    [Fact]
    public void On_Windows_the_script_runs_encoded_and_a_failure_is_an_ExternalTool_error()
    {
        var ok = new FakeCommandRunner(new[] { "powershell.exe" });
        var r = new HyperVRegistrar(ok, isWindows: true).Checkpoint("vm", "snap", dryRun: false);
        Assert.True(r.Ran);
        var ran = Assert.Single(ok.Ran);
        Assert.Equal(r.Script, Encoding.Unicode.GetString(Convert.FromBase64String(ran.Arguments[^1])));

        var failing = new FakeCommandRunner(new[] { "powershell.exe" },
            _ => new CommandResult(1, "", "Checkpoint-VM : Hyper-V was unable to find a virtual machine with name \"vm\"."));
        var e = Assert.Throws<DiskImageException>(() => new HyperVRegistrar(failing, isWindows: true).Checkpoint("vm", null, dryRun: false));
        Assert.Equal(ErrorKind.ExternalTool, e.Kind);
        Assert.Contains("unable to find a virtual machine", e.Message);

        var missing = Assert.Throws<DiskImageException>(() =>
            new HyperVRegistrar(new FakeCommandRunner(Array.Empty<string>()), isWindows: true).Checkpoint("vm", null, dryRun: false));
        Assert.Equal(ErrorKind.ExternalTool, missing.Kind);
        Assert.Contains("Checkpoint-VM -Name 'vm'", missing.Message);
    }

    [Fact]
    public void WMI_return_values_and_WQL_strings()
    {
        var meanings = Enumerable.Range(0, 7).Select(i => SnapshotServiceCodes.Describe((uint)i)).ToList();
        Assert.Equal(7, meanings.Distinct().Count());
        Assert.Equal("completed", meanings[0]);
        Assert.StartsWith("not supported", meanings[1]);
        Assert.StartsWith("failed", meanings[2]);
        Assert.StartsWith("timed out", meanings[3]);
        Assert.StartsWith("invalid parameter", meanings[4]);
        Assert.StartsWith("invalid state", meanings[5]);
        Assert.StartsWith("invalid type", meanings[6]);
        Assert.Equal("job started", SnapshotServiceCodes.Describe(4096));
        Assert.Contains("32770", SnapshotServiceCodes.Describe(32770));
        Assert.True(SnapshotServiceCodes.IsFinished(7));
        Assert.False(SnapshotServiceCodes.IsFinished(4));
        Assert.Equal(@"'it\'s C:\\vm'", SnapshotServiceCodes.WqlString(@"it's C:\vm"));
    }

    private static string Line(string script, string command) =>
        script.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith(command, StringComparison.Ordinal));

    /// <summary>
    /// A small tokenizer of PowerShell command arguments, written from the language rules (not from the code under test):
    /// words split on blanks; inside '...' nothing expands and a quote character written twice stands for one; the
    /// typographic quotes ‘ ’ ‚ ‛ are quote characters too. A bare word may not contain a quote or a $ (it would expand).
    /// </summary>
    internal static List<string> Tokens(string line)
    {
        static bool IsQuote(char c) => c == '\'' || c == '\u2018' || c == '\u2019' || c == '\u201A' || c == '\u201B';
        var tokens = new List<string>();
        int i = 0;
        while (i < line.Length)
        {
            if (line[i] == ' ' || line[i] == '\t') { i++; continue; }
            var sb = new StringBuilder();
            if (IsQuote(line[i]))
            {
                i++;
                while (true)
                {
                    if (i >= line.Length) throw new FormatException($"unterminated literal in: {line}");
                    if (IsQuote(line[i]))
                    {
                        if (i + 1 < line.Length && IsQuote(line[i + 1])) { sb.Append(line[i + 1]); i += 2; continue; }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                if (i < line.Length && line[i] != ' ') throw new FormatException($"literal glued to text at {i} in: {line}");
            }
            else
            {
                while (i < line.Length && line[i] != ' ')
                {
                    if (IsQuote(line[i]) || line[i] == '$' || line[i] == '`' || line[i] == '"')
                        throw new FormatException($"unquoted special character '{line[i]}' at {i} in: {line}");
                    sb.Append(line[i++]);
                }
            }
            tokens.Add(sb.ToString());
        }
        return tokens;
    }
}
