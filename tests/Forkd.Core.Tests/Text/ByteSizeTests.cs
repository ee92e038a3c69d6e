using Forkd.Core.Text;

namespace Forkd.Core.Tests;

public class ByteSizeTests
{
    // The expected strings are forkd's human_bytes outputs (spec 1.12.7, verified there with rustc).
    [Theory]
    [InlineData(0L, "0 KiB")]
    [InlineData(512L, "0 KiB")]
    [InlineData(1024L, "1 KiB")]
    [InlineData(1536L, "2 KiB")]
    [InlineData(2560L, "2 KiB")]
    [InlineData(1048575L, "1024 KiB")]
    [InlineData(2L * 1024 * 1024, "2.0 MiB")]
    [InlineData(1073741823L, "1024.0 MiB")]
    [InlineData(3L * 1024 * 1024 * 1024, "3.00 GiB")]
    public void Formats_like_forkd(long bytes, string expected) => Assert.Equal(expected, ByteSize.Format(bytes));
}
