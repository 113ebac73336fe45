using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using static TwinSeal.Apps.Tests.ComputationReference;

namespace TwinSeal.Apps.Tests;

/// <summary>What a count result means and what else leaves with it (issue 10): distinct keys, own empty keys, nothing about the other party's table.</summary>
public sealed class ReleasedCountsTests
{
    private static readonly SecureMatchApp App = new();

    private static OutputPolicy Count(ResultKind result = ResultKind.MatchCount) => new("secure-match", "email", result, Own);

    private static AppOutput Run(Table own, Table peer, OutputPolicy policy) => App.Run(new AppInput(own, peer, policy, Own, Peer));

    private static string Candidate(int i) => $"candidate{i}@example.org";

    /// <summary>Party 2's probe: candidate i repeated 2^i times, so a count of joined pairs would spell party 1's membership in binary.</summary>
    private static Table PowersOfTwoProbe(int candidates)
        => new(["email"], Enumerable.Range(0, candidates).SelectMany(i => Enumerable.Repeat(new[] { Candidate(i) }, 1 << i)).ToList());

    private static Table PartyOneHolding(params int[] candidates)
        => new(["email"], candidates.Select(i => new[] { Candidate(i) }).Concat(Enumerable.Range(0, 50).Select(i => new[] { $"someone{i}@example.org" })).ToList());

    [Theory]
    [InlineData(ResultKind.MatchCount)]
    [InlineData(ResultKind.IntersectionSize)]
    public void Repeating_candidates_2_to_the_i_times_reveals_only_how_many_candidates_match_not_which(ResultKind result)
    {
        var probe = PowersOfTwoProbe(16);

        var first = Run(probe, PartyOneHolding(0, 3, 15), Count(result));
        var second = Run(probe, PartyOneHolding(1, 2, 4), Count(result));

        Assert.Equal(3, first.DistinctMatchedKeys);
        Assert.Equal(first, second with { Rows = first.Rows });
    }

    [Fact]
    public void A_count_is_the_same_whether_the_receiver_repeats_its_own_keys_or_not()
    {
        var own = Tables.Of(["email"], ["a"], ["b"], ["c"]);
        var repeated = Tables.Of(["email"], ["a"], ["a"], ["a"], ["b"], ["c"], ["c"]);
        var peer = Tables.Of(["email"], ["a"], ["c"], ["c"], ["z"]);

        Assert.Equal(2, Run(own, peer, Count()).DistinctMatchedKeys);
        Assert.Equal(2, Run(repeated, peer, Count()).DistinctMatchedKeys);
    }

    [Fact]
    public void A_key_the_other_party_holds_twice_counts_once()
    {
        var own = Tables.Of(["email"], ["a"]);
        var peer = Tables.Of(["email"], ["a"], ["a"], ["a"]);

        Assert.Equal(1, Run(own, peer, Count()).DistinctMatchedKeys);
    }

    [Fact]
    public void Own_rows_with_an_empty_key_match_nothing_and_are_counted_as_skipped()
    {
        var own = Tables.Of(["email"], [""], ["a"], [""]);
        var peer = Tables.Of(["email"], ["a"], [""]);

        var output = Run(own, peer, Count());

        Assert.Equal((1L, 2L), (output.DistinctMatchedKeys, output.SkippedEmptyKeys));
    }

    [Fact]
    public void Empty_keys_of_the_other_party_are_never_counted()
    {
        var own = Tables.Of(["email"], ["a"]);
        var without = Tables.Of(["email"], ["a"]);
        var with = Tables.Of(["email"], ["a"], [""], [""], [""]);

        Assert.Equal(Run(own, without, Count()), Run(own, with, Count()));
        Assert.Equal(0, Run(own, with, Count()).SkippedEmptyKeys);
    }

    [Theory]
    [InlineData(ResultKind.MatchCount)]
    [InlineData(ResultKind.IntersectionSize)]
    [InlineData(ResultKind.JoinedRows)]
    public void The_other_party_s_row_count_does_not_leave_unless_the_policy_releases_it(ResultKind result)
    {
        var own = Tables.Of(["email"], ["a"]);
        var peer = Tables.Of(["email", "x"], ["a", "1"], ["b", "2"], ["c", "3"]);

        Assert.Null(Run(own, peer, Count(result)).PeerRows);
        Assert.Equal(3, Run(own, peer, Count(result) with { ReleasePeerRowCount = true }).PeerRows);
    }

    [Fact]
    public void Unmatched_rows_of_the_other_party_change_nothing_that_leaves_a_count()
    {
        var own = Tables.Of(["email"], ["a"], ["b"]);
        var small = Tables.Of(["email"], ["a"]);
        var large = new Table(["email"], [["a"], .. Enumerable.Range(0, 3000).Select(i => new[] { $"other{i}" })]);

        Assert.Equal(Run(own, small, Count()), Run(own, large, Count()));
    }

    [Fact]
    public void Unmatched_rows_of_the_other_party_change_nothing_that_leaves_an_aggregate()
    {
        var own = Tables.Of(["email", "grp"], ["a", "g"], ["b", "g"]);
        var small = Tables.Of(["email"], ["a"], ["b"]);
        var large = new Table(["email"], [["a"], ["b"], .. Enumerable.Range(0, 3000).Select(i => new[] { $"other{i}" })]);
        var policy = new OutputPolicy("aggregate", "email", ResultKind.Aggregates, Own, GroupBy: ["grp"], Measures: [new AggregateMeasure(AggregateFunction.Count)], MinimumGroupSize: 2);

        var fromSmall = Run(own, small, policy);
        var fromLarge = Run(own, large, policy);

        Assert.Equal(fromSmall.Rows!.Rows, fromLarge.Rows!.Rows);
        Assert.Equal(fromSmall with { Rows = null }, fromLarge with { Rows = null });
    }
}

/// <summary>A count needs an own table of at least <see cref="OutputPolicy.MinimumOwnRows"/> distinct keys (issue 10).</summary>
public sealed class MinimumOwnRowsTests
{
    private static readonly SecureMatchApp App = new();

    private static OutputPolicy Count(int minimum, ResultKind result = ResultKind.MatchCount) => new("secure-match", "email", result, Own, MinimumOwnRows: minimum);

    private static AppOutput Run(Table own, Table peer, OutputPolicy policy) => App.Run(new AppInput(own, peer, policy, Own, Peer));

    private static readonly Table PartyOne = Tables.Of(["email"], ["target@example.org"], ["b"], ["c"]);

    [Theory]
    [InlineData(ResultKind.MatchCount)]
    [InlineData(ResultKind.IntersectionSize)]
    public void A_one_row_probe_is_refused_with_own_table_too_small(ResultKind result)
    {
        var probe = Tables.Of(["email"], ["target@example.org"]);

        var e = Assert.Throws<ProtocolException>(() => Run(probe, PartyOne, Count(100, result)));

        Assert.Equal("own-table-too-small", e.Code);
    }

    [Fact]
    public void Repeating_one_key_does_not_make_the_table_big_enough()
    {
        var probe = new Table(["email"], Enumerable.Repeat(new[] { "target@example.org" }, 500).ToList());

        Assert.Equal("own-table-too-small", Assert.Throws<ProtocolException>(() => Run(probe, PartyOne, Count(100))).Code);
    }

    [Fact]
    public void Empty_keys_do_not_make_the_table_big_enough()
    {
        var probe = new Table(["email"], [["target@example.org"], .. Enumerable.Repeat(new[] { "" }, 500)]);

        Assert.Equal("own-table-too-small", Assert.Throws<ProtocolException>(() => Run(probe, PartyOne, Count(100))).Code);
    }

    [Fact]
    public void The_refusal_is_the_same_whether_or_not_the_other_party_holds_the_key()
    {
        var probe = Tables.Of(["email"], ["target@example.org"]);
        var without = Tables.Of(["email"], ["b"]);

        var held = Assert.Throws<ProtocolException>(() => Run(probe, PartyOne, Count(2)));
        var notHeld = Assert.Throws<ProtocolException>(() => Run(probe, without, Count(2)));

        Assert.Equal((held.Code, held.Message), (notHeld.Code, notHeld.Message));
    }

    [Fact]
    public void A_table_of_exactly_the_minimum_distinct_keys_is_counted()
    {
        var own = Tables.Of(["email"], ["target@example.org"], ["b"], ["x"]);

        Assert.Equal(2, Run(own, PartyOne, Count(3)).DistinctMatchedKeys);
    }
}
