using System.Collections.Concurrent;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>
/// Snapshot operations run under the disk's lock from the catalog read to the last rename: two of them at once never
/// lose a snapshot (one waits for nothing and exits 12), and a reader sees the chain before or after, or exit 12,
/// never a layer half moved.
/// </summary>
public class SnapshotConcurrencyTests
{
    private const int ExitLocked = 12;
    private const long Size = 4L << 20;

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Concurrent_snapshot_creates_never_lose_a_snapshot(string format)
    {
        using var dir = new TempDirectory("snap-race");
        string disk = dir.File("d." + format);
        Assert.Equal(0, (await CliRunner.RunAsync("create", disk, "--size", "4M")).ExitCode);
        var made = new List<string>();
        int refused = 0;
        for (int round = 0; round < 8; round++)
        {
            // Two real processes started together; whichever locks the disk first creates its snapshot.
            var a = CliRunner.RunProcessAsync(null, "snapshot", "create", disk, "--name", $"a{round}");
            var b = CliRunner.RunProcessAsync(null, "snapshot", "create", disk, "--name", $"b{round}");
            foreach (var (name, result) in new[] { ($"a{round}", await a), ($"b{round}", await b) })
            {
                Assert.True(result.ExitCode is 0 or ExitLocked, $"round {round}, {name}: {result}");
                if (result.ExitCode == 0) made.Add(name);
                else
                {
                    refused++;
                    Assert.Contains("locked", result.StdErr);
                    Assert.Contains("pid ", result.StdErr);
                }
            }
        }
        // Every create that exited 0 is in the catalog, and every layer file is a snapshot of it: nothing orphaned.
        var catalog = DiskSnapshots.Catalog(disk);
        Assert.Null(catalog.Pending);
        Assert.Equal(made.Order(), catalog.Snapshots.Select(s => s.Name).Order());
        var layers = Directory.GetFiles(dir.Path, "d.snap-*").Select(Path.GetFileName).Order();
        Assert.Equal(catalog.Snapshots.Select(s => s.File).Order(), layers);
        Assert.Equal(new[] { "d." + format, "d." + format + SnapshotCatalog.Suffix }.Concat(layers).Order(),
            Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
        Assert.Equal(0, (await CliRunner.RunAsync("check", disk)).ExitCode);
        Assert.True(made.Count >= 8, $"only {made.Count} creates succeeded ({refused} refused)");
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task A_reader_sees_the_same_disk_or_a_lock_while_snapshot_commands_move_its_layers(string ext)
    {
        using var dir = new TempDirectory("snap-reader");
        string disk = dir.File("vm" + ext);
        var cur = new byte[Size];
        var rng = new Random(4242);
        OpsKit.CreateBase(disk, Size, 1 << 20);
        // Data in every layer: the base, a middle snapshot and the current state.
        OpsKit.RandomWrites(disk, rng, 3, cur);
        DiskSnapshots.Create(disk, "base");
        OpsKit.RandomWrites(disk, rng, 3, cur);
        DiskSnapshots.Create(disk, "middle");
        OpsKit.RandomWrites(disk, rng, 3, cur);

        // From here on only commands that keep the current content: create, revert to a snapshot of that content,
        // delete (of any snapshot: its data moves into its neighbours), rollback to a snapshot of that content.
        var failures = new ConcurrentQueue<string>();
        int reads = 0, refused = 0;
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    var seen = OpsKit.ReadAll(disk);
                    if (OpsKit.FirstDifference(cur, seen) is long at and >= 0) failures.Enqueue($"the reader saw different content at offset {at}");
                    Interlocked.Increment(ref reads);
                }
                catch (DiskImageException e) when (e.Kind == ErrorKind.Locked)
                {
                    Interlocked.Increment(ref refused);
                }
                catch (Exception e)
                {
                    failures.Enqueue($"{e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                }
            }
        });

        var same = new List<string>();
        int serial = 0;
        var steps = new List<string>();
        for (int i = 0; i < 32 && failures.IsEmpty; i++)
        {
            var catalog = DiskSnapshots.Catalog(disk);
            string? current = catalog.Snapshots.FirstOrDefault(s => s.Id == catalog.Current)?.Name;
            string step = (i % 4) switch
            {
                0 => "create",
                1 => same.Count > 0 ? "revert" : "create",
                2 => catalog.Snapshots.Count > 1 ? "delete" : "create",
                _ => current is not null && same.Contains(current) ? "rollback" : "create",
            };
            steps.Add(step);
            string victim = catalog.Snapshots[rng.Next(catalog.Snapshots.Count)].Name;
            await Retry(async () =>
            {
                switch (step)
                {
                    case "create":
                        string name = $"s{serial++}";
                        DiskSnapshots.Create(disk, name);
                        same.Add(name);
                        break;
                    case "revert":
                        DiskSnapshots.Revert(disk, same[rng.Next(same.Count)]);
                        break;
                    case "rollback":
                        DiskSnapshots.Rollback(disk);
                        break;
                    default:
                        // A delete refused half-way and run again is finished by the rerun (or was already done).
                        if (!DiskSnapshots.Catalog(disk).Snapshots.Any(s => s.Name == victim)) return;
                        try { await DiskSnapshots.DeleteAsync(disk, victim); }
                        catch (DiskImageException e) when (e.Kind == ErrorKind.ReadOnly) { return; } // a base with branches
                        same.Remove(victim);
                        break;
                }
            });
            // Let the reader through between commands too, not only while one runs.
            int seen = Volatile.Read(ref reads);
            for (int wait = 0; wait < 200 && Volatile.Read(ref reads) == seen && failures.IsEmpty; wait++) await Task.Delay(5);
        }
        stop.Cancel();
        await reader;
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)) + $"\nsteps: {string.Join(' ', steps)}");
        Assert.True(reads > 0, $"the reader never read ({refused} refusals)");
        OpsKit.AssertContent(cur, disk, "after the commands");
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task A_command_that_moves_layers_refuses_at_once_while_a_reader_holds_the_disk_and_changes_nothing(string ext)
    {
        using var dir = new TempDirectory("snap-held");
        string disk = dir.File("vm" + ext);
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(5), 3, cur);
        DiskSnapshots.Create(disk, "s");
        OpsKit.RandomWrites(disk, new Random(6), 3, cur);
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, File.ReadAllBytes);

        using (var reading = DiskImage.Open(disk))
        {
            foreach (var (what, run) in new (string, Func<Task>)[]
                     {
                         ("snapshot create", () => Task.Run(() => DiskSnapshots.Create(disk, "t"))),
                         ("snapshot revert", () => Task.Run(() => DiskSnapshots.Revert(disk, "s"))),
                         ("rollback", () => Task.Run(() => DiskSnapshots.Rollback(disk))),
                         ("snapshot delete", () => DiskSnapshots.DeleteAsync(disk, "s")),
                         ("snapshot repair", () => Task.Run(() => DiskSnapshots.Repair(disk))),
                         ("merge", () => Merge.CommitAsync(disk)),
                         ("compact", () => Compact.RunAsync(disk)),
                     })
            {
                var e = await Assert.ThrowsAsync<DiskImageException>(run);
                Assert.True(e.Kind == ErrorKind.Locked, $"{what}: {e.Message}");
                Assert.Contains($"pid {Environment.ProcessId} (this process, reading", e.Message);
            }
        }
        foreach (var (file, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(file)), $"{file} changed");
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir.Path).Order());
        OpsKit.AssertContent(cur, disk, "after the refusals");
    }

    // Runs a step again while the reader holds a file it needs (a refusal is the expected outcome of contention).
    private static async Task Retry(Func<Task> step)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await step();
                return;
            }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Locked && attempt < 500)
            {
                await Task.Delay(2);
            }
        }
    }
}
