using TwinSeal.Protocol;

namespace TwinSeal.Kms.Tests;

/// <summary>The KMS refuses (invalid-policy) an output policy the app would refuse, when the parties try to agree it.</summary>
public sealed class OutputPolicyValidationTests(SharedKms kms) : IClassFixture<SharedKms>
{
    private KmsTestBed Bed => kms.Bed;

    private static readonly OutputPolicy Aggregate = new("aggregate", "id", ResultKind.Aggregates, "party1", Measures: [new AggregateMeasure(AggregateFunction.Count)], MinimumGroupSize: 3);

    private async Task<ProposalStatus> ProposeAsync(OutputPolicy output)
    {
        var key = await Bed.Party1.Client.CreateKeyAsync("output policy");
        return await Bed.Party1.Client.ProposeAsync(key.KeyId, new ChangeProposal(0, KmsTestBed.Policy() with { Output = output }));
    }

    private Task RefusedAsync(OutputPolicy output) => KmsTestBed.AssertProblemAsync(400, "invalid-policy", () => ProposeAsync(output));

    public static TheoryData<OutputPolicy> Valid() =>
    [
        new OutputPolicy("secure-match", "id", ResultKind.IntersectionSize, "party1", KeyColumns: ["id", "region"], Normalisation: KeyNormalisation.TrimLowerCase),
        new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party1", ReleasedColumns: ["id", "score"]),
        new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", MinimumOwnRows: 100, ReleasePeerRowCount: true),
        new OutputPolicy("data-integration", "id", ResultKind.JoinedRows, "party1", JoinKind: JoinKind.FullOuter),
        Aggregate with
        {
            GroupBy = ["region"], Measures = [new AggregateMeasure(AggregateFunction.Sum, "score"), new AggregateMeasure(AggregateFunction.Mean, "score")],
            Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["score"] = [0, 100] },
        },
    ];

    [Theory]
    [MemberData(nameof(Valid))]
    public async Task A_valid_output_policy_is_accepted(OutputPolicy output) => Assert.Equal("pending", (await ProposeAsync(output)).Status);

    public static TheoryData<string, OutputPolicy> Invalid() => new()
    {
        { "unknown computation", Aggregate with { Computation = "psi" } },
        { "aggregate without measures", Aggregate with { Measures = null } },
        { "aggregate with empty measures", Aggregate with { Measures = [] } },
        { "aggregate without k", Aggregate with { MinimumGroupSize = null } },
        { "k = 0", Aggregate with { MinimumGroupSize = 0 } },
        { "k < 0", Aggregate with { MinimumGroupSize = -2 } },
        { "sum without column", Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum)] } },
        { "sum without bounds", Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "score")] } },
        { "bounds with lo > hi", Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Mean, "score")], Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["score"] = [5, 1] } } },
        { "bounds of three numbers", Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "score")], Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["score"] = [0, 1, 2] } } },
        { "bounds of a column no sum reads", Aggregate with { Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["score"] = [0, 1] } } },
        { "match with bounds", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", Bounds: new Dictionary<string, IReadOnlyList<decimal>> { ["score"] = [0, 1] }) },
        { "minimumOwnRows = 0", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", MinimumOwnRows: 0) },
        { "minimumOwnRows with joined rows", new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party1", MinimumOwnRows: 10) },
        { "minimumOwnRows with aggregates", Aggregate with { MinimumOwnRows = 10 } },
        { "duplicate measure", Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Count), new AggregateMeasure(AggregateFunction.Count)] } },
        { "duplicate group-by", Aggregate with { GroupBy = ["a", "a"] } },
        { "aggregate releasing rows", Aggregate with { Result = ResultKind.JoinedRows } },
        { "match with aggregates", new OutputPolicy("secure-match", "id", ResultKind.Aggregates, "party1") },
        { "match with k", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", MinimumGroupSize: 2) },
        { "match with left join", new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party1", JoinKind: JoinKind.Left) },
        { "integration inner", new OutputPolicy("data-integration", "id", ResultKind.JoinedRows, "party1") },
        { "integration count", new OutputPolicy("data-integration", "id", ResultKind.MatchCount, "party1", JoinKind: JoinKind.Left) },
        { "released only keys", new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party1", KeyColumns: ["id", "region"], ReleasedColumns: ["region", "id"]) },
        { "released empty", new OutputPolicy("secure-match", "id", ResultKind.JoinedRows, "party1", ReleasedColumns: []) },
        { "released with count", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", ReleasedColumns: ["score"]) },
        { "keyColumn not first", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", KeyColumns: ["region", "id"]) },
        { "duplicate key column", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", KeyColumns: ["id", "id"]) },
        { "undefined result", new OutputPolicy("secure-match", "id", (ResultKind)42, "party1") },
        { "undefined normalisation", new OutputPolicy("secure-match", "id", ResultKind.MatchCount, "party1", Normalisation: (KeyNormalisation)42) },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task An_invalid_output_policy_is_refused(string why, OutputPolicy output)
    {
        _ = why;
        await RefusedAsync(output);
    }
}
