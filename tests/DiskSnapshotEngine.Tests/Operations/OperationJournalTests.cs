using System.Text.Json;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// The merge/pull journal is written and read without the serializer (start-up time), in the layout the serializer
/// gave it: journals of interrupted runs written by earlier versions still load, and what is written now is the same text.
/// </summary>
public sealed class OperationJournalTests
{
    private static readonly JsonSerializerOptions s_serializer = new() { WriteIndented = true };

    private static IEnumerable<OperationJournal> Journals()
    {
        yield return new OperationJournal { Operation = "commit", Image = "/d/child.vhdx", Target = "/d/base.vhdx", TargetId = Guid.NewGuid(),
            Merged = ["/d/child.vhdx", "/d/mid.vhdx"], Children = ["/d/c1.vdi"], ReplaceImage = true, LiftSeal = true, Phase = "copy",
            Links = [new JournalLink("/d/mid.vhdx", "/e/mid.vhdx"), new JournalLink("/d/ü \"x\".vhdx", "/e/y.vhdx")],
            Files = [new JournalFile("/d/mid.vhdx", "/e/mid.vhdx", 2049, ulong.MaxValue), new JournalFile("/d/child.vhdx", "/d/child.vhdx", 0, 7)] };
        yield return new OperationJournal { Operation = "pull", Image = "/d/déjà vu \"q\".qcow2", Phase = "relink" };
        yield return new OperationJournal { Operation = "commit", Image = "/d/a.vhdx", Target = "/d/b.vhdx", Children = ["x", ""], Phase = "remove" };
    }

    private static void AssertSame(OperationJournal expected, OperationJournal actual)
    {
        Assert.Equal(expected.Operation, actual.Operation);
        Assert.Equal(expected.Image, actual.Image);
        Assert.Equal(expected.Target, actual.Target);
        Assert.Equal(expected.TargetId, actual.TargetId);
        Assert.Equal(expected.Merged, actual.Merged);
        Assert.Equal(expected.Children, actual.Children);
        Assert.Equal(expected.ReplaceImage, actual.ReplaceImage);
        Assert.Equal(expected.LiftSeal, actual.LiftSeal);
        Assert.Equal(expected.Links, actual.Links);
        Assert.Equal(expected.Files, actual.Files);
        Assert.Equal(expected.Phase, actual.Phase);
    }

    [Fact]
    public void Written_as_the_serializer_writes_it_and_read_back()
    {
        foreach (var journal in Journals())
        {
            string serialized = JsonSerializer.Serialize(journal, s_serializer);
            Assert.Equal(serialized, OperationJournalJson.Write(journal));
            AssertSame(journal, OperationJournalJson.Read(serialized));
            AssertSame(journal, OperationJournalJson.Read(OperationJournalJson.Write(journal)));
        }
    }

    [Fact]
    public void A_journal_in_another_order_with_unknown_properties_loads()
    {
        var journal = OperationJournalJson.Read("""{"Phase":"copy","Extra":[1,{"a":2}],"Image":"/i","Operation":"pull","TargetId":"00000000-0000-0000-0000-000000000001"}""");
        Assert.Equal(("pull", "/i", "copy", (string?)null), (journal.Operation, journal.Image, journal.Phase, journal.Target));
        Assert.Equal(new Guid("00000000-0000-0000-0000-000000000001"), journal.TargetId);
        Assert.Empty(journal.Merged);
        Assert.Empty(journal.Links);
        Assert.False(journal.ReplaceImage);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("[]")]
    [InlineData("{")]
    [InlineData("""{"Operation":"commit","Image":"/i"}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":3}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","TargetId":"nope"}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","Merged":"a"}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","LiftSeal":"yes"}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","Files":[{"Name":"/i","File":"/i","Inode":1}]}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","Files":[{"Name":"/i","File":"/i","Device":-1,"Inode":1}]}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","Files":[3]}""")]
    [InlineData("""{"Operation":"commit","Image":"/i","Phase":"copy","Links":[{"Link":"/l"}]}""")]
    public void A_journal_that_cannot_be_read_is_a_corrupt_image_error_naming_it(string text)
    {
        using var dir = new TempDirectory("journal");
        string image = dir.File("i.vhdx");
        File.WriteAllText(OperationJournal.PathFor(image), text);
        var e = Assert.Throws<DiskImageException>(() => OperationJournal.Load(image));
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Equal(OperationJournal.PathFor(image), e.Path);
        Assert.Contains("the operation journal cannot be read", e.Message);
    }
}
