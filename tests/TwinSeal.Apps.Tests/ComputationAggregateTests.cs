using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using static TwinSeal.Apps.Tests.ComputationReference;

namespace TwinSeal.Apps.Tests;

public sealed class ComputationAggregateTests
{
    private static readonly SecureMatchApp App = new();

    private static readonly AggregateMeasure[] AllMeasures =
    [
        new(AggregateFunction.Count),
        new(AggregateFunction.Count, "score"),
        new(AggregateFunction.Sum, "score"),
        new(AggregateFunction.Mean, "score"),
        new(AggregateFunction.Sum, "amount"),
        new(AggregateFunction.Mean, "amount"),
    ];

    private static readonly string[][] Groupings = [["grp"], ["party1.grp"], ["grp", "party1.grp"], []];

    /// <summary>An aggregate policy; every summed or averaged column gets the bounds [lo, hi].</summary>
    internal static OutputPolicy Policy(int k, IReadOnlyList<AggregateMeasure>? measures = null, IReadOnlyList<string>? groupBy = null, string[]? keys = null,
        KeyNormalisation n = KeyNormalisation.None, decimal lo = -1000, decimal hi = 1000)
    {
        keys ??= ["id"];
        measures ??= [new AggregateMeasure(AggregateFunction.Count)];
        var bounds = measures.Where(m => m.Function != AggregateFunction.Count).Select(m => m.Column!).Distinct().ToDictionary(c => c, _ => (IReadOnlyList<decimal>)[lo, hi]);
        return new("aggregate", keys[0], ResultKind.Aggregates, Own, KeyColumns: keys.Length > 1 ? keys : null, Normalisation: n,
            GroupBy: groupBy, Measures: measures, MinimumGroupSize: k, Bounds: bounds.Count == 0 ? null : bounds);
    }

    private static AppOutput Run(Table own, Table peer, OutputPolicy policy) => App.Run(new AppInput(own, peer, policy, Own, Peer));

    /// <summary>A peer table with <paramref name="peerRows"/> distinct rows of key "k" (scores 1..n) and an own table with one row "k" in group "g".</summary>
    private static (Table Own, Table Peer) GroupOf(int peerRows)
    {
        var own = Tables.Of(["id", "grp"], ["k", "g"], ["other", "h"]);
        var peer = new Table(["id", "score"], Enumerable.Range(1, peerRows).Select(i => new[] { "k", i.ToString(System.Globalization.CultureInfo.InvariantCulture) }).ToList());
        return (own, peer);
    }

    [Theory]
    [MemberData(nameof(Cases), MemberType = typeof(ComputationReference))]
    public void Aggregates_equal_the_reference_grouping_of_the_inner_join(int seed, int ownRows, int peerRows, KeyNormalisation n, bool multi)
    {
        var rng = new Random(seed);
        string[] keys = multi ? ["id", "region"] : ["id"];
        var own = RandomTable(rng, ownRows, ["id", "grp", "amount", "region"], keys, groupColumns: ["grp"], numberColumns: ["amount"]);
        var peer = RandomTable(rng, peerRows, ["region", "score", "id", "grp"], keys, groupColumns: ["grp"], numberColumns: ["score"]);
        // Odd seeds clamp into [-1, 5], so values of the pool (up to 100) are cut; even seeds leave every value as it is.
        var policy = Policy(k: 1 + seed % 3, AllMeasures, Groupings[seed % Groupings.Length], keys, n, lo: seed % 2 == 0 ? -1000 : -1, hi: seed % 2 == 0 ? 1000 : 5);

        var output = Run(own, peer, policy);

        var expected = Aggregate(own, peer, policy);
        Assert.Equal(expected.Columns, output.Rows!.Columns);
        Assert.Equal(expected.Rows, output.Rows.Rows);
        Assert.Null(output.DistinctMatchedKeys);
    }

    [Fact]
    public void A_group_with_k_minus_1_rows_of_the_other_party_is_suppressed()
    {
        var (own, peer) = GroupOf(4);

        var output = Run(own, peer, Policy(k: 5, [new AggregateMeasure(AggregateFunction.Sum, "score")], ["grp"]));

        Assert.Equal<string[]>([["", "", "1"]], output.Rows!.Rows);
    }

    [Fact]
    public void A_group_with_exactly_k_rows_of_the_other_party_is_released()
    {
        var (own, peer) = GroupOf(5);

        var output = Run(own, peer, Policy(k: 5, [new AggregateMeasure(AggregateFunction.Sum, "score")], ["grp"]));

        Assert.Equal<string[]>([["g", "15", ""], ["", "", "0"]], output.Rows!.Rows);
    }

    [Fact]
    public void A_group_with_k_plus_1_rows_of_the_other_party_is_released()
    {
        var (own, peer) = GroupOf(6);

        var output = Run(own, peer, Policy(k: 5, [new AggregateMeasure(AggregateFunction.Sum, "score")], ["grp"]));

        Assert.Equal<string[]>([["g", "21", ""], ["", "", "0"]], output.Rows!.Rows);
    }

    [Fact]
    public void Own_rows_repeating_one_peer_row_s_key_do_not_make_its_group_big_enough()
    {
        // Five joined rows, but all of them carry the same single row of the other party: its score would show as sum / 5.
        var own = Tables.Of(["id", "grp"], ["k", "g"], ["k", "g"], ["k", "g"], ["k", "g"], ["k", "g"]);
        var peer = Tables.Of(["id", "score"], ["k", "42"]);

        var output = Run(own, peer, Policy(k: 2, [new AggregateMeasure(AggregateFunction.Sum, "score")], ["grp"]));

        Assert.Equal<string[]>([["", "", "1"]], output.Rows!.Rows);
    }

    [Fact]
    public void The_final_row_counts_the_suppressed_groups_and_reveals_nothing_else_about_them()
    {
        var own = Tables.Of(["id", "grp"], ["a", "big"], ["b", "small1"], ["c", "small2"]);
        var peer = Tables.Of(["id", "score"], ["a", "1"], ["a", "2"], ["b", "1000"], ["c", "2000"]);

        var output = Run(own, peer, Policy(k: 2, [new AggregateMeasure(AggregateFunction.Count), new AggregateMeasure(AggregateFunction.Sum, "score")], ["grp"]));

        Assert.Equal(["grp", "count", "sum(score)", "suppressed_groups"], output.Rows!.Columns);
        Assert.Equal<string[]>([["big", "2", "3", ""], ["", "", "", "2"]], output.Rows.Rows);
    }

    [Fact]
    public void The_summary_row_is_present_with_zero_when_the_join_is_empty()
    {
        var own = Tables.Of(["id", "grp"]);
        var peer = Tables.Of(["id", "score"], ["k", "1"]);

        var output = Run(own, peer, Policy(k: 1, groupBy: ["grp"]));

        Assert.Equal<string[]>([["", "", "0"]], output.Rows!.Rows);
    }

    [Fact]
    public void Count_sum_and_mean_are_computed_per_group_in_ordinal_group_order()
    {
        var own = Tables.Of(["id", "grp"], ["a", "north"], ["b", "north"], ["c", "South"], ["d", "South"]);
        var peer = Tables.Of(["id", "score"], ["a", "1.5"], ["b", "2.5"], ["c", "10"], ["d", "-4"], ["d", "3"]);
        AggregateMeasure[] measures = [new(AggregateFunction.Count), new(AggregateFunction.Sum, "score"), new(AggregateFunction.Mean, "score")];

        var output = Run(own, peer, Policy(k: 1, measures, ["grp"]));

        Assert.Equal(["grp", "count", "sum(score)", "mean(score)", "suppressed_groups"], output.Rows!.Columns);
        Assert.Equal<string[]>([["South", "3", "9", "3", ""], ["north", "2", "4.0", "2.0", ""], ["", "", "", "", "0"]], output.Rows.Rows);
    }

    [Fact]
    public void Without_group_by_columns_the_whole_join_is_one_group_still_subject_to_k()
    {
        var own = Tables.Of(["id"], ["a"], ["b"]);
        var peer = Tables.Of(["id", "score"], ["a", "1"], ["b", "2"]);

        Assert.Equal<string[]>([["2", ""], ["", "0"]], Run(own, peer, Policy(k: 2)).Rows!.Rows);
        Assert.Equal<string[]>([["", "1"]], Run(own, peer, Policy(k: 3)).Rows!.Rows);
    }

    [Fact]
    public void Empty_cells_are_skipped_by_sum_mean_and_column_count_and_a_group_without_values_has_empty_sum_and_mean()
    {
        var own = Tables.Of(["id", "grp"], ["a", "g"], ["b", "g"], ["c", "h"]);
        var peer = Tables.Of(["id", "score"], ["a", "4"], ["b", ""], ["c", ""]);
        AggregateMeasure[] measures = [new(AggregateFunction.Count), new(AggregateFunction.Count, "score"), new(AggregateFunction.Sum, "score"), new(AggregateFunction.Mean, "score")];

        var output = Run(own, peer, Policy(k: 1, measures, ["grp"]));

        Assert.Equal<string[]>([["g", "2", "1", "4", "4", ""], ["h", "1", "0", "", "", ""], ["", "", "", "", "", "0"]], output.Rows!.Rows);
    }

    [Fact]
    public void Empty_group_by_cells_form_a_group_of_their_own()
    {
        var own = Tables.Of(["id", "grp"], ["a", ""], ["b", "g"]);
        var peer = Tables.Of(["id"], ["a"], ["b"]);

        Assert.Equal<string[]>([["", "1", ""], ["g", "1", ""], ["", "", "0"]], Run(own, peer, Policy(k: 1, groupBy: ["grp"])).Rows!.Rows);
    }

    [Fact]
    public void Groups_may_be_formed_by_the_other_party_s_columns_named_as_in_the_joined_rows()
    {
        var own = Tables.Of(["id", "grp"], ["a", "mine"], ["b", "mine"]);
        var peer = Tables.Of(["id", "grp"], ["a", "x"], ["b", "y"], ["a", "y"]);

        var output = Run(own, peer, Policy(k: 1, groupBy: ["party1.grp"]));

        Assert.Equal(["party1.grp", "count", "suppressed_groups"], output.Rows!.Columns);
        Assert.Equal<string[]>([["x", "1", ""], ["y", "2", ""], ["", "", "0"]], output.Rows.Rows);
    }

    [Fact]
    public void Output_column_names_that_collide_get_a_leading_underscore()
    {
        var own = Tables.Of(["id", "count"], ["a", "c"]);
        var peer = Tables.Of(["id"], ["a"]);

        var output = Run(own, peer, Policy(k: 1, groupBy: ["count"]));

        Assert.Equal(["count", "_count", "suppressed_groups"], output.Rows!.Columns);
    }

    [Fact]
    public void A_non_numeric_cell_in_a_summed_column_is_refused_naming_the_column_party_and_row_but_not_the_value()
    {
        var own = Tables.Of(["id"], ["a"], ["b"]);
        var peer = Tables.Of(["id", "score"], ["a", "1"], ["b", "SECRET-12"]);

        var e = Assert.Throws<ProtocolException>(() => Run(own, peer, Policy(k: 1, [new AggregateMeasure(AggregateFunction.Sum, "score")])));

        Assert.Equal("non-numeric-value", e.Code);
        Assert.Contains("'score'", e.Message, StringComparison.Ordinal);
        Assert.Contains(Peer, e.Message, StringComparison.Ordinal);
        Assert.Contains("data row 2", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("SECRET", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_non_numeric_cell_in_a_row_that_matches_nothing_is_refused_too_so_the_error_does_not_reveal_the_join()
    {
        var own = Tables.Of(["id"], ["a"]);
        var peer = Tables.Of(["id", "score"], ["a", "1"], ["zzz", "n/a"]);

        var e = Assert.Throws<ProtocolException>(() => Run(own, peer, Policy(k: 1, [new AggregateMeasure(AggregateFunction.Mean, "score")])));

        Assert.Equal("non-numeric-value", e.Code);
    }

    [Fact]
    public void Column_count_does_not_need_numbers()
    {
        var own = Tables.Of(["id"], ["a"]);
        var peer = Tables.Of(["id", "label"], ["a", "not a number"]);

        var output = Run(own, peer, Policy(k: 1, [new AggregateMeasure(AggregateFunction.Count, "label")]));

        Assert.Equal(["count(label)", "suppressed_groups"], output.Rows!.Columns);
        Assert.Equal(["1", ""], output.Rows.Rows[0]);
    }

    [Fact]
    public void A_sum_beyond_the_decimal_range_is_refused_as_an_overflow()
    {
        var own = Tables.Of(["id"], ["a"]);
        var peer = Tables.Of(["id", "score"], ["a", "7e28"], ["a", "7e28"]);

        var e = Assert.Throws<ProtocolException>(() => Run(own, peer, Policy(k: 1, [new AggregateMeasure(AggregateFunction.Sum, "score")], lo: 0, hi: 7e28m)));

        Assert.Equal("aggregate-overflow", e.Code);
    }

    [Fact]
    public void A_group_by_column_not_in_the_joined_rows_is_a_schema_mismatch()
    {
        var t = Tables.Of(["id"], ["a"]);

        var e = Assert.Throws<ProtocolException>(() => Run(t, t, Policy(k: 1, groupBy: ["region"])));

        Assert.Equal("schema-mismatch", e.Code);
    }

    [Fact]
    public void A_measure_column_not_in_the_joined_rows_is_a_schema_mismatch()
    {
        var t = Tables.Of(["id"], ["a"]);

        var e = Assert.Throws<ProtocolException>(() => Run(t, t, Policy(k: 1, [new AggregateMeasure(AggregateFunction.Sum, "amount")])));

        Assert.Equal("schema-mismatch", e.Code);
    }
}
