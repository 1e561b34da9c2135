using System.Text.RegularExpressions;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Package;

/// <summary>
/// The README's set-up step 2 tells a user on a fresh machine which Debian packages <c>tests/run.sh</c> installs with
/// apt-get (as root, or through sudo): a package the script installs and the README leaves out is a surprise on a
/// machine where installing is controlled, so the list is read from the script itself, not kept by hand here.
/// </summary>
public sealed partial class ReadmeSetupTests
{
    [Fact]
    public void The_set_up_step_names_every_package_run_sh_installs()
    {
        string root = RepositoryFixtures.RepositoryRoot ?? throw new InvalidOperationException("the tests do not run inside a checkout");
        string script = File.ReadAllText(Path.Combine(root, "tests", "run.sh"));
        var packages = PackageOfTool().Matches(script).Select(m => m.Groups["package"].Value)
            .Concat(MissingPackage().Matches(script).Select(m => m.Groups["package"].Value))
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        Assert.Contains("qemu-utils", packages); // the parse found the script's table
        Assert.Contains("zlib1g-dev", packages); // and the header check after it

        string readme = File.ReadAllText(Path.Combine(root, "README.md"));
        int start = readme.IndexOf("2. Run all tests", StringComparison.Ordinal);
        Assert.True(start >= 0, "README.md has no set-up step '2. Run all tests'");
        int end = readme.IndexOf("```sh", start, StringComparison.Ordinal);
        string step = readme[start..end];
        var missing = packages.Where(p => !Regex.IsMatch(step, $@"(?<![\w-]){Regex.Escape(p)}(?![\w-])")).ToList();
        Assert.True(missing.Count == 0, $"README set-up step 2 does not name: {string.Join(", ", missing)}");
    }

    // "  [qemu-img]=qemu-utils" in the tool -> package table.
    [GeneratedRegex(@"^\s*\[[\w.-]+\]=(?<package>[\w.+-]+)", RegexOptions.Multiline)]
    private static partial Regex PackageOfTool();

    // "missing+=(zlib1g-dev)": packages added by a check other than a tool on the PATH.
    [GeneratedRegex(@"missing\+=\((?<package>[\w.+-]+)\)")]
    private static partial Regex MissingPackage();
}
