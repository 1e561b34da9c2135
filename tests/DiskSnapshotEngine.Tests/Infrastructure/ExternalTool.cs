using System.Diagnostics;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>Runs real peer tools (qemu-img, qemu-io, vhdiinfo, xmllint, virsh) with argument lists, never shell strings.</summary>
public static class ExternalTool
{
    /// <summary>Full path of a tool on the PATH, or null.</summary>
    public static string? Find(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator))
        {
            if (string.IsNullOrEmpty(dir)) continue;
            var p = System.IO.Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>True when the tool is on the PATH.</summary>
    public static bool Has(string name) => Find(name) is not null;

    /// <summary>Runs a tool and returns its exit code and outputs (a 5-minute cap).</summary>
    public static (int ExitCode, string StdOut, string StdErr) Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(Find(tool) ?? tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in 5 minutes");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Runs a tool and fails the test with its output when it exits non-zero.</summary>
    public static string RunChecked(string tool, params string[] args)
    {
        var (code, o, e) = Run(tool, args);
        if (code != 0) throw new Xunit.Sdk.XunitException($"{tool} {string.Join(' ', args)} exited {code}\nstdout: {o}\nstderr: {e}");
        return o;
    }
}

/// <summary>A fact that is skipped, with the reason, when a peer tool is not installed (CI installs them all).</summary>
public sealed class RequiresToolFactAttribute : FactAttribute
{
    public RequiresToolFactAttribute(params string[] tools) => Skip = RequiresTool.Reason(tools);
}

/// <summary>A theory that is skipped, with the reason, when a peer tool is not installed.</summary>
public sealed class RequiresToolTheoryAttribute : TheoryAttribute
{
    public RequiresToolTheoryAttribute(params string[] tools) => Skip = RequiresTool.Reason(tools);
}

internal static class RequiresTool
{
    public static string? Reason(string[] tools)
    {
        var missing = tools.Where(t => !ExternalTool.Has(t)).ToList();
        return missing.Count == 0 ? null
            : $"needs {string.Join(", ", missing)} on the PATH (tests/run.sh installs them: qemu-utils libvhdi-utils libxml2-utils libvirt-clients libnbd-bin 7zip)";
    }
}
