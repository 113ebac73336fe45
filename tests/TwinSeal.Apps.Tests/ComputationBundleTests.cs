using TwinSeal.Enclave;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps.Tests;

public sealed class ComputationBundleTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData("secure-match", ResultKind.IntersectionSize, JoinKind.Inner)]
    [InlineData("data-integration", ResultKind.JoinedRows, JoinKind.FullOuter)]
    [InlineData("aggregate", ResultKind.Aggregates, JoinKind.Inner)]
    public void The_measured_bundle_holds_one_app_that_runs_every_computation(string computation, ResultKind result, JoinKind join)
    {
        var bundle = EnclaveImage.Load(Bundles.Create(_temp.Sub("image"))).LoadApp();
        var own = Tables.Of(["id", "o"], ["k", "1"]);
        var peer = Tables.Of(["id", "p"], ["k", "2"], ["j", "3"]);
        var policy = new OutputPolicy(computation, "id", result, "party2", JoinKind: join,
            Measures: computation == "aggregate" ? [new AggregateMeasure(AggregateFunction.Sum, "p")] : null,
            MinimumGroupSize: computation == "aggregate" ? 1 : null,
            Bounds: computation == "aggregate" ? new Dictionary<string, IReadOnlyList<decimal>> { ["p"] = [0, 10] } : null);

        var output = bundle.App.Run(new AppInput(own, peer, policy, "party2", "party1"));

        // Each computation found the one shared key: as a count, as one joined row with the other party's cell, or as a sum.
        if (result == ResultKind.IntersectionSize) Assert.Equal(1, output.DistinctMatchedKeys);
        else Assert.Contains(output.Rows!.Rows, r => r.Contains("2"));
    }
}
