using DiskSnapshotEngine.Cli;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Cli;

public class SizeParserTests
{
    [Theory]
    [InlineData("0", 0L)]
    [InlineData("512", 512L)]
    [InlineData("1K", 1024L)]
    [InlineData("1k", 1024L)]
    [InlineData("4KiB", 4096L)]
    [InlineData("64M", 64L << 20)]
    [InlineData("64 MiB", 64L << 20)]
    [InlineData("3G", 3L << 30)]
    [InlineData("2gib", 2L << 30)]
    [InlineData("1T", 1L << 40)]
    [InlineData("7TiB", 7L << 40)]
    [InlineData("100B", 100L)]
    [InlineData("10GB", 10L << 30)]
    [InlineData("10gb", 10L << 30)]
    [InlineData("1.5G", 3L << 29)]
    [InlineData("512MB", 512L << 20)]
    [InlineData("1TiB", 1L << 40)]
    [InlineData("1KB", 1024L)]
    [InlineData("0.5K", 512L)]
    [InlineData("2PB", 2L << 50)]
    public void Parses_bytes_and_binary_suffixes(string text, long expected)
    {
        Assert.True(SizeParser.TryParse(text, out long value, out string error), error);
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("G")]
    [InlineData("-1")]
    [InlineData("10Q")]
    [InlineData("1.5")]
    [InlineData("0.1K")]
    [InlineData("1,5G")]
    [InlineData("1.5.1G")]
    [InlineData(".5G")]
    [InlineData("1e9")]
    [InlineData("10 gigabytes")]
    [InlineData("1GBB")]
    [InlineData("0x10")]
    [InlineData("9999999999999999999")]
    [InlineData("8388608T")]
    public void Rejects_what_is_not_a_size(string text)
    {
        Assert.False(SizeParser.TryParse(text, out _, out string error));
        Assert.False(string.IsNullOrWhiteSpace(error));
        Assert.DoesNotContain('\n', error);
        if (text.Trim().Length > 0 && !text.StartsWith('9') && !text.StartsWith('8'))
            Assert.Contains("for example 10GB, 1.5G, 512MB, 1TiB", error);
    }

    [Fact]
    public void Every_suffix_multiplies_by_its_power_of_1024()
    {
        string[][] names = { new[] { "", "B" }, new[] { "K", "KiB", "k" }, new[] { "M", "MiB", "m" }, new[] { "G", "GiB" }, new[] { "T", "TiB", "tib" } };
        var gen = from n in Gen.Choose(0, int.MaxValue)
                  from unit in Gen.Choose(0, 4)
                  from pick in Gen.Choose(0, 9)
                  select (n, unit, names[unit][pick % names[unit].Length]);
        Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var (n, unit, suffix) = t;
            int shift = 10 * unit;
            bool fits = n <= long.MaxValue >> shift;
            bool parsed = SizeParser.TryParse($"{n}{suffix}", out long v, out _);
            // What fits in 64 bits is exact; what does not is refused, never wrapped.
            return fits ? parsed && v == (long)n << shift : !parsed;
        }).QuickCheckThrowOnFailure();
    }
}
