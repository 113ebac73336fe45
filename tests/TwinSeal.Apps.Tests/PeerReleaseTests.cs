using System.Buffers;
using TwinSeal.Crypto;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using TwinSeal.Tests.Shared;

namespace TwinSeal.Apps.Tests;

/// <summary>
/// The other party's decrypted table is wiped and freed as soon as the engine has read it (AppInput.ReleasePeer), by
/// every computation that reads it only through the engine, and the results are those computed with the table kept.
/// The table lives in a <see cref="PlaintextBuffer"/>, as in the isolated area, so any read after the release throws.
/// </summary>
public sealed class PeerReleaseTests
{
    private static readonly SecureMatchApp App = new();

    private static readonly Table Own = Tables.Of(["email", "segment", "score"],
        ["a@x", "gold", "1"], ["b@x", "gold", "2"], ["c@x", "silver", "3"], ["x@x", "silver", "4"], ["", "gold", "5"]);
    private static readonly string[] PeerColumns = ["email", "age", "region", "spend"];
    private static readonly string[][] PeerRows =
        [["a@x", "40", "north", "10"], ["b@x", "30", "south", "20"], ["c@x", "50", "north", "30"], ["y@x", "60", "east", "40"], ["a@x", "45", "west", "50"]];

    public static TheoryData<string> ReleasingComputations => ["secure-match rows", "secure-match count", "data-integration", "analysis"];

    private static AppInput Input(string computation, Table peer) => computation switch
    {
        "secure-match rows" => new(Own, peer, new("secure-match", "email", ResultKind.JoinedRows, "party2"), "party2", "party1"),
        "secure-match count" => new(Own, peer, new("secure-match", "email", ResultKind.MatchCount, "party2"), "party2", "party1"),
        "data-integration" => new(Own, peer, new("data-integration", "email", ResultKind.JoinedRows, "party2", JoinKind: JoinKind.FullOuter), "party2", "party1"),
        "aggregate" => new(Own, peer, ComputationAggregateTests.Policy(k: 1, [new AggregateMeasure(AggregateFunction.Sum, "score")], ["segment"], keys: ["email"]), "party2", "party1"),
        // AnalysisCases' recipient is party1: the same two tables, named for it.
        _ => new(Own, peer, AnalysisCases.Policy(AnalysisCases.CountBySegment, AnalysisCases.MinAge), AnalysisCases.Recipient, AnalysisCases.Other,
            new AnalysisChoice("q", new Dictionary<string, string> { ["min_age"] = "35" })),
    };

    [Theory]
    [MemberData(nameof(ReleasingComputations))]
    public void A_computation_that_reads_the_other_table_only_through_the_engine_releases_it_and_computes_the_same(string computation)
    {
        var kept = App.Run(Input(computation, Tables.Of(PeerColumns, PeerRows)));
        using var buffer = PeerInPlaintextBuffer();
        var releases = 0;

        var released = App.Run(Input(computation, Table.FromCsv(PeerColumns, PeerRows.Length, buffer.Written)) with { ReleasePeer = () => { releases++; buffer.Wipe(); } });

        Assert.Equal(1, releases);
        Assert.Throws<ObjectDisposedException>(() => buffer.Written.Span.ToArray());
        Assert.Equal(kept.DistinctMatchedKeys, released.DistinctMatchedKeys);
        Assert.Equal(kept.Rows?.Csv.ToArray(), released.Rows?.Csv.ToArray());
    }

    [Fact]
    public void An_aggregate_reads_the_other_partys_rows_after_the_join_so_it_keeps_them()
    {
        var kept = App.Run(Input("aggregate", Tables.Of(PeerColumns, PeerRows)));
        using var buffer = PeerInPlaintextBuffer();
        var releases = 0;

        var output = App.Run(Input("aggregate", Table.FromCsv(PeerColumns, PeerRows.Length, buffer.Written)) with { ReleasePeer = () => releases++ });

        Assert.Equal(0, releases);
        Assert.Equal(kept.Rows!.Csv.ToArray(), output.Rows!.Csv.ToArray());
    }

    private static PlaintextBuffer PeerInPlaintextBuffer()
    {
        var csv = CsvDialect.Write(PeerColumns, PeerRows);
        var buffer = PlaintextBuffer.Allocate(csv.Length);
        ((IBufferWriter<byte>)buffer).Write(csv);
        return buffer;
    }
}
