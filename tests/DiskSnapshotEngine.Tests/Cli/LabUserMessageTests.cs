using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The refusals a lab user meets next to root's golden images (mode 0644, in root's folder): each names the file the
/// user gave and says what to do that this user can do (a folder it may not write, a lock -U reads through, a seal it
/// may not lift).
/// </summary>
public class LabUserMessageTests
{
    private const int ExitLocked = 12, ExitReadOnly = 15;
    private const string ForceShareHint = "; -U reads it anyway, as qemu-img -U does, without consistency guarantees";

    /// <summary>
    /// compact, resize (a rewrite), snapshot create, and a clone, export or new image in root's folder: the one-line error names
    /// the image (or output) and its folder, exit 15, and leaves no temporary file; whether the user may write the image
    /// itself or not.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_verb_that_writes_beside_an_image_in_a_folder_the_user_cannot_write_names_the_image_and_the_folder()
    {
        using var dir = new TempDirectory("lab-folder");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755, root's
        string golden = dir.File("golden.vhdx"), mine = dir.File("mine.vhdx"), mineVhd = dir.File("mine.vhd");
        foreach (var image in new[] { golden, mine, mineVhd }) await Ok("create", image, "--size", "16M");
        // Given to the user, in root's folder: writable, but nothing can be created beside it.
        foreach (var image in new[] { mine, mineVhd }) ExternalTool.RunChecked("chown", "65534:65534", image);
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, ContentHash.OfFile);

        foreach (var (args, named, verb) in new[]
        {
            (new[] { "compact", golden }, golden, "compact"),
            (["compact", mine], mine, "compact"),
            (["resize", mineVhd, "--size", "64M"], mineVhd, "resize"), // a dynamic VHD grows by a rewrite
            (["snapshot", "create", mine, "--name", "s"], mine, null),
            (["clone", golden, dir.File("copy.vhdx")], dir.File("copy.vhdx"), null),
            (["export", golden, dir.File("copy.raw")], dir.File("copy.raw"), null),
            (["create", dir.File("new.vhdx"), "--size", "1M"], dir.File("new.vhdx"), null),
            (["clone", "--linked", golden, dir.File("linked.vhdx")], dir.File("linked.vhdx"), null),
        })
        {
            var (code, _, stderr) = CliRunner.RunAsNobody(args);
            string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.True(code == ExitReadOnly, $"dse {string.Join(' ', args)}: exit {code}: {stderr}");
            Assert.StartsWith($"dse: error: {named}: cannot ", line);
            Assert.Contains($"its folder {dir.Path} is not writable by this user", line);
            if (verb is not null) Assert.Contains($"({verb} rewrites the image beside itself, then renames it over)", line);
            Assert.DoesNotContain(".dse-", line);
        }
        Assert.Equal(before, Directory.GetFiles(dir.Path).ToDictionary(f => f, ContentHash.OfFile));
    }

    /// <summary>
    /// A verb refused by a seal tells a user who may write the file to unseal it, and one who may not (root's golden
    /// of mode 0644) to work on a full clone, with the owner and mode: never "dse unseal", which would fail too.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_sealed_golden_the_user_cannot_write_is_refused_with_the_full_clone_advice_not_dse_unseal()
    {
        using var dir = new TempDirectory("lab-seal");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755
        string golden = dir.File("golden.vhdx");
        await Ok("create", golden, "--size", "16M");
        await Ok("seal", golden);
        File.SetUnixFileMode(golden, (UnixFileMode)0x1A4); // 0644
        string hash = ContentHash.OfFile(golden);

        foreach (var args in new[] { new[] { "resize", golden, "--size", "32M" }, ["set-identity", golden, "--new"] })
        {
            var (code, _, stderr) = CliRunner.RunAsNobody(args);
            Assert.True(code == ExitReadOnly, $"dse {string.Join(' ', args)}: exit {code}: {stderr}");
            Assert.Contains($"{golden}: cannot ", stderr);
            Assert.Contains("the image is sealed", stderr);
            Assert.Contains($"its owner root and mode 0644 do not let this user write it, so it cannot be unsealed either: work on a full clone (dse clone {golden} COPY)", stderr);
            Assert.DoesNotContain("dse unseal", stderr);

            // Root may write it: the advice is to unseal it.
            var asRoot = await CliRunner.RunAsync(args);
            Assert.True(asRoot.ExitCode == ExitReadOnly, asRoot.ToString());
            Assert.Contains($"dse unseal {golden}", asRoot.StdErr);
            Assert.DoesNotContain("full clone", asRoot.StdErr);
        }

        // serve opens it for writing unless --read-only, which is what both users can do.
        string[] serve = ["serve", golden, "--socket", dir.File("s.sock")];
        var (serveCode, _, serveError) = CliRunner.RunAsNobody(serve);
        Assert.True(serveCode == ExitReadOnly, serveError);
        var rootServe = await CliRunner.RunAsync(serve);
        Assert.True(rootServe.ExitCode == ExitReadOnly, rootServe.ToString());
        foreach (var stderr in new[] { serveError, rootServe.StdErr })
            Assert.EndsWith("; 'dse serve --read-only' serves it without writing to it", stderr.TrimEnd());
        Assert.Equal(hash, ContentHash.OfFile(golden));
    }

    /// <summary>
    /// Merging a clone into root's golden that records it as its only clone but is now readable by others (0644): the
    /// refusal keeps its reason (other users may have clones dse cannot see) and tells this user, who may not write the
    /// golden, to work on a full clone, never to unseal it.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_into_roots_readable_sealed_golden_gets_the_full_clone_advice_not_dse_unseal()
    {
        using var dir = new TempDirectory("lab-merge-seal");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755
        string golden = dir.File("golden.vhdx"), clone = dir.File("clone.vhdx");
        await Ok("create", golden, "--size", "16M");
        File.SetUnixFileMode(golden, (UnixFileMode)0x180); // 0600: the clone is recorded as its only one
        await Ok("clone", "--linked", golden, clone);
        ExternalTool.RunChecked("chown", "65534:65534", clone);
        File.SetUnixFileMode(golden, (UnixFileMode)0x1A4); // 0644
        string hash = ContentHash.OfFile(golden);

        var (code, _, stderr) = CliRunner.RunAsNobody(["merge", clone]);
        Assert.True(code == ExitReadOnly, $"exit {code}: {stderr}");
        Assert.Contains("readable by other users (mode 0644 in folders others can enter), who may have linked clones dse cannot see", stderr);
        Assert.Contains($"work on a full clone (dse clone {golden} COPY)", stderr);
        Assert.DoesNotContain("dse unseal", stderr);
        Assert.Equal(hash, ContentHash.OfFile(golden));
    }

    /// <summary>
    /// While another process writes an image, every verb that only reads and takes -U says that -U reads it anyway (the
    /// plain info and export lines too, which run without the parser); the verbs that write, and clone (no -U), do not.
    /// </summary>
    [Fact]
    public async Task A_locked_image_refused_to_a_read_verb_suggests_U_and_never_to_a_write_verb()
    {
        using var dir = new TempDirectory("lab-lock");
        string image = dir.File("disk.vhdx"), input = dir.File("in.bin");
        await Ok("create", image, "--size", "16M");
        File.WriteAllBytes(input, new byte[4096]);

        using var writer = CliRunner.Start("write", image, "--offset", "0", "--input", "-");
        LockProbe.WaitUntilHeld(image);
        try
        {
            foreach (var args in new[]
            {
                new[] { "info", image }, ["info", image, "--json"], ["map", image], ["check", image], ["compare", image, image],
                ["export", image, dir.File("out.raw")], ["measure", image],
            })
            {
                // As the program runs them (plain info and export without the parser) and through the parser.
                foreach (var r in new[] { await CliRunner.RunAsync(args), await CliRunner.RunParsedAsync(null, args) })
                {
                    Assert.True(r.ExitCode == ExitLocked, $"dse {string.Join(' ', args)}: {r}");
                    Assert.Contains($"pid {writer.Id}", r.StdErr);
                    Assert.Contains(ForceShareHint, r.StdErr);
                    Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
                }
            }
            foreach (var args in new[]
            {
                new[] { "write", image, "--offset", "0", "--input", input }, ["compact", image], ["check", "--repair", image],
                ["clone", image, dir.File("copy.vhdx")], ["snapshot", "create", image, "--name", "s"],
            })
            {
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == ExitLocked, $"dse {string.Join(' ', args)}: {r}");
                Assert.DoesNotContain("-U", r.StdErr);
            }
        }
        finally
        {
            writer.StandardInput.Close();
            await writer.WaitForExitAsync();
        }
        Assert.Equal(0, writer.ExitCode);
    }

    /// <summary>
    /// A lab user's linked clone of root's golden (0644: left unsealed, as this user cannot write it) merged into it: refused
    /// (exit 15) naming the golden and why, before anything is written: no journal beside the clone, both files unchanged.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_into_a_golden_the_user_cannot_write_is_refused_before_its_journal()
    {
        using var dir = new TempDirectory("lab-merge-journal");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755, root's
        string golden = dir.File("golden.vdi"), home = Path.Combine(dir.Path, "home"), clone = Path.Combine(home, "c.vdi");
        await Ok("create", golden, "--size", "16M");
        Directory.CreateDirectory(home);
        ExternalTool.RunChecked("chown", "65534:65534", home);
        var (made, _, madeErr) = CliRunner.RunAsNobody(["clone", "--linked", golden, clone]);
        Assert.True(made == 0, $"clone --linked as nobody: exit {made}: {madeErr}");
        string goldenHash = ContentHash.OfFile(golden), cloneHash = ContentHash.OfFile(clone);

        var (code, _, stderr) = CliRunner.RunAsNobody(["merge", clone]);
        Assert.True(code == ExitReadOnly, $"exit {code}: {stderr}");
        Assert.Contains($"{golden}: cannot merge into it: its owner root and mode 0644 do not let this user write it", stderr);
        Assert.Equal([clone], Directory.GetFiles(home));
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        Assert.Equal(cloneHash, ContentHash.OfFile(clone));
    }
    /// <summary>
    /// An unsealed image with a linked clone beside it: <c>write</c> is refused naming the option that writes it anyway
    /// (<c>dse write --force</c>), and <c>serve</c>, which has no such option, never tells the user to "force the write".
    /// </summary>
    [Fact]
    public async Task A_write_refused_for_children_names_the_option_that_forces_it_and_serve_offers_none()
    {
        using var dir = new TempDirectory("lab-children-force");
        string parent = dir.File("parent.vdi"), child = dir.File("child.vdi"), data = dir.File("d.bin");
        await Ok("create", parent, "--size", "16M");
        await Ok("create", child, "--parent", parent);
        await Ok("unseal", parent);
        await File.WriteAllBytesAsync(data, RandomData.Bytes(512, 3));
        string hash = ContentHash.OfFile(parent);

        var write = await CliRunner.RunAsync("write", parent, "--offset", "0", "--input", data);
        Assert.True(write.ExitCode == ExitReadOnly, write.ToString());
        Assert.Contains($"{parent}: the image has 1 child image(s) that read through it ({child})", write.StdErr);
        Assert.Contains("'dse write --force' writes it anyway", write.StdErr);

        var serve = await CliRunner.RunAsync("serve", parent, "--socket", dir.File("s.sock"));
        Assert.True(serve.ExitCode == ExitReadOnly, serve.ToString());
        Assert.DoesNotContain("force the write", serve.StdErr);
        Assert.Contains("'dse serve --read-only' serves it without writing to it", serve.StdErr);
        Assert.Equal(hash, ContentHash.OfFile(parent));
    }
}
