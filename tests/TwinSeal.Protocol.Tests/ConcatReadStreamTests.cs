namespace TwinSeal.Protocol.Tests;

public sealed class ConcatReadStreamTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task CopyToAsync_WritesWhatIsLeftOfThePrefix_ThenTheRest()
    {
        var stream = new ConcatReadStream("head"u8.ToArray(), new MemoryStream("body"u8.ToArray()));
        var first = new byte[1];
        await stream.ReadExactlyAsync(first, Ct);
        var copy = new MemoryStream();

        await stream.CopyToAsync(copy, Ct);

        Assert.Equal("eadbody"u8.ToArray(), copy.ToArray());
    }

    [Fact]
    public async Task CopyToAsync_HandsTheRestOnInOneWrite_WhenItIsInMemory()
    {
        // One write straight from the rest's memory is what lets DatasetStream encrypt without copying it first.
        var body = new byte[100_000];
        var stream = new ConcatReadStream([1, 2], new MemoryStream(body));
        var writes = new WriteLengths();

        await stream.CopyToAsync(writes, Ct);

        Assert.Equal([2, body.Length], writes.Lengths);
    }
}
