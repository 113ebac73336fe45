namespace TwinSeal.Protocol.Tests;

public sealed class ProtocolJsonWarmUpTests
{
    [Fact]
    public void Warming_up_goes_through_every_message_type_without_an_error_escaping()
    {
        // It runs on a worker thread at service start, where an escaping error would go unseen.
        Assert.Null(Record.Exception(ProtocolJson.Warm));
    }
}
