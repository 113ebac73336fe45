using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using static TwinSeal.Apps.Tests.ComputationReference;

namespace TwinSeal.Apps.Tests;

/// <summary>Every request outside the output policy is refused before any data is looked at, each case on its own.</summary>
public sealed class OutputPolicyRefusalTests
{
    private static readonly SecureMatchApp App = new();

    private static readonly Table Data = Tables.Of(["id", "v"], ["k", "1"]);

    private static readonly OutputPolicy Match = new("secure-match", "id", ResultKind.JoinedRows, Own);
    private static readonly OutputPolicy Integration = new("data-integration", "id", ResultKind.JoinedRows, Own, JoinKind: JoinKind.Left);
    private static readonly OutputPolicy Aggregate = new("aggregate", "id", ResultKind.Aggregates, Own, Measures: [new AggregateMeasure(AggregateFunction.Count)], MinimumGroupSize: 2);

    private static ProtocolException Refused(OutputPolicy policy, Table? table = null)
    {
        var e = Assert.Throws<ProtocolException>(() => App.Run(new AppInput(table ?? Data, table ?? Data, policy, Own, Peer)));
        Assert.Equal("outside-output-policy", e.Code);
        return e;
    }

    [Fact]
    public void The_valid_baseline_policies_run()
    {
        Assert.Single(App.Run(new AppInput(Data, Data, Match, Own, Peer)).Rows!.Rows);
        Assert.Single(App.Run(new AppInput(Data, Data, Integration, Own, Peer)).Rows!.Rows);
        Assert.NotNull(App.Run(new AppInput(Data, Data, Aggregate, Own, Peer)).Rows);
    }

    [Fact]
    public void An_unknown_computation_is_refused() => Refused(Match with { Computation = "psi" });

    [Theory]
    [InlineData("secure-match")]
    [InlineData("data-integration")]
    [InlineData("aggregate")]
    public void A_result_for_another_recipient_is_refused_whatever_the_computation(string computation)
    {
        var policy = computation switch { "secure-match" => Match, "data-integration" => Integration, _ => Aggregate };

        var e = Refused(policy with { Recipient = Peer });

        Assert.Contains(Peer, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_count_for_another_recipient_is_refused() => Refused(Match with { Result = ResultKind.MatchCount, Recipient = Peer });

    [Fact]
    public void An_intersection_size_for_another_recipient_is_refused() => Refused(Match with { Result = ResultKind.IntersectionSize, Recipient = Peer });

    [Fact]
    public void Secure_match_refuses_to_release_aggregates() => Refused(Match with { Result = ResultKind.Aggregates });

    [Fact]
    public void Data_integration_refuses_to_release_only_a_count() => Refused(Integration with { Result = ResultKind.MatchCount });

    [Fact]
    public void Data_integration_refuses_to_release_an_intersection_size() => Refused(Integration with { Result = ResultKind.IntersectionSize });

    [Fact]
    public void Aggregate_refuses_to_release_joined_rows() => Refused(Aggregate with { Result = ResultKind.JoinedRows });

    [Fact]
    public void Aggregate_refuses_to_release_a_match_count() => Refused(Aggregate with { Result = ResultKind.MatchCount });

    [Fact]
    public void Data_integration_refuses_an_inner_join() => Refused(Integration with { JoinKind = JoinKind.Inner });

    [Fact]
    public void Secure_match_refuses_a_left_join() => Refused(Match with { JoinKind = JoinKind.Left });

    [Fact]
    public void Aggregate_refuses_a_full_outer_join() => Refused(Aggregate with { JoinKind = JoinKind.FullOuter });

    [Fact]
    public void An_undefined_result_kind_is_refused() => Refused(Match with { Result = (ResultKind)99 });

    [Fact]
    public void An_undefined_normalisation_is_refused() => Refused(Match with { Normalisation = (KeyNormalisation)99 });

    [Fact]
    public void An_undefined_join_kind_is_refused() => Refused(Integration with { JoinKind = (JoinKind)99 });

    [Fact]
    public void An_aggregate_without_measures_is_refused() => Refused(Aggregate with { Measures = null });

    [Fact]
    public void An_aggregate_with_an_empty_measure_list_is_refused() => Refused(Aggregate with { Measures = [] });

    [Fact]
    public void An_aggregate_without_a_minimum_group_size_is_refused() => Refused(Aggregate with { MinimumGroupSize = null });

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void An_aggregate_with_a_minimum_group_size_below_one_is_refused(int k) => Refused(Aggregate with { MinimumGroupSize = k });

    [Fact]
    public void A_sum_without_a_column_is_refused() => Refused(Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum)] });

    [Fact]
    public void A_mean_without_a_column_is_refused() => Refused(Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Mean)] });

    [Theory]
    [InlineData(AggregateFunction.Sum)]
    [InlineData(AggregateFunction.Mean)]
    public void A_sum_or_mean_without_bounds_for_its_column_is_refused(AggregateFunction f) => Refused(Aggregate with { Measures = [new AggregateMeasure(f, "v")] });

    [Fact]
    public void Bounds_with_lo_above_hi_are_refused() => Refused(Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "v")], Bounds = Bound("v", 5, 1) });

    [Fact]
    public void Bounds_that_are_not_two_numbers_are_refused()
        => Refused(Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "v")], Bounds = new Dictionary<string, IReadOnlyList<decimal>> { ["v"] = [1] } });

    [Fact]
    public void Bounds_for_a_column_no_sum_or_mean_reads_are_refused() => Refused(Aggregate with { Bounds = Bound("v", 0, 1) });

    [Fact]
    public void Bounds_outside_an_aggregate_are_refused() => Refused(Match with { Bounds = Bound("v", 0, 1) });

    [Fact]
    public void A_sum_with_bounds_for_its_column_runs()
        => Assert.NotNull(App.Run(new AppInput(Data, Data, Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "v")], Bounds = Bound("v", 0, 1), MinimumGroupSize = 1 }, Own, Peer)).Rows);

    private static Dictionary<string, IReadOnlyList<decimal>> Bound(string column, decimal lo, decimal hi) => new() { [column] = [lo, hi] };

    [Theory]
    [InlineData(ResultKind.JoinedRows)]
    [InlineData(ResultKind.Aggregates)]
    public void A_minimum_own_table_size_outside_a_count_is_refused(ResultKind result)
        => Refused((result == ResultKind.Aggregates ? Aggregate : Match with { Result = result }) with { MinimumOwnRows = 10 });

    [Fact]
    public void A_minimum_own_table_size_below_one_is_refused() => Refused(Match with { Result = ResultKind.MatchCount, MinimumOwnRows = 0 });

    [Fact]
    public void An_undefined_aggregate_function_is_refused() => Refused(Aggregate with { Measures = [new AggregateMeasure((AggregateFunction)99, "v")] });

    [Fact]
    public void The_same_measure_twice_is_refused() => Refused(Aggregate with { Measures = [new AggregateMeasure(AggregateFunction.Sum, "v"), new AggregateMeasure(AggregateFunction.Sum, "v")] });

    [Fact]
    public void The_same_group_by_column_twice_is_refused() => Refused(Aggregate with { GroupBy = ["v", "v"] });

    [Fact]
    public void Group_by_columns_outside_an_aggregate_are_refused() => Refused(Match with { GroupBy = ["v"] });

    [Fact]
    public void Measures_outside_an_aggregate_are_refused() => Refused(Integration with { Measures = [new AggregateMeasure(AggregateFunction.Count)] });

    [Fact]
    public void A_minimum_group_size_outside_an_aggregate_is_refused() => Refused(Match with { MinimumGroupSize = 5 });

    [Fact]
    public void Released_columns_with_a_count_result_are_refused() => Refused(Match with { Result = ResultKind.MatchCount, ReleasedColumns = ["v"] });

    [Fact]
    public void Released_columns_with_an_aggregate_are_refused() => Refused(Aggregate with { ReleasedColumns = ["count"] });

    [Fact]
    public void An_empty_released_column_list_is_refused() => Refused(Match with { ReleasedColumns = [] });

    [Fact]
    public void Released_columns_naming_only_the_key_columns_are_refused() => Refused(Match with { KeyColumns = ["id", "v"], ReleasedColumns = ["v", "id"] });

    [Fact]
    public void A_released_column_named_twice_is_refused() => Refused(Match with { ReleasedColumns = ["v", "v"] });

    [Fact]
    public void Key_columns_whose_first_is_not_the_key_column_are_refused() => Refused(Match with { KeyColumns = ["v", "id"] });

    [Fact]
    public void An_empty_key_column_list_is_refused() => Refused(Match with { KeyColumns = [] });

    [Fact]
    public void A_key_column_named_twice_is_refused() => Refused(Match with { KeyColumns = ["id", "id"] });

    [Fact]
    public void An_empty_key_column_name_is_refused() => Refused(Match with { KeyColumn = "" });

    [Fact]
    public void A_refused_policy_is_refused_before_the_tables_are_read()
    {
        // The tables lack the key column: a request inside the policy would be a schema mismatch; this one never gets that far.
        Refused(Aggregate with { MinimumGroupSize = 0 }, Tables.Of(["nothing"], ["x"]));
    }

    [Fact]
    public void A_released_column_that_the_joined_rows_do_not_have_is_a_schema_mismatch()
    {
        var e = Assert.Throws<ProtocolException>(() => App.Run(new AppInput(Data, Data, Match with { ReleasedColumns = ["v", "nope"] }, Own, Peer)));

        Assert.Equal("schema-mismatch", e.Code);
        Assert.Contains("'nope'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Released_columns_drop_every_other_column_of_the_joined_rows()
    {
        var own = Tables.Of(["id", "secret", "o"], ["k", "s", "o1"]);
        var peer = Tables.Of(["id", "p", "hidden"], ["k", "p1", "h"]);

        var output = App.Run(new AppInput(own, peer, Match with { ReleasedColumns = ["p", "o"] }, Own, Peer));

        Assert.Equal(["p", "o"], output.Rows!.Columns);
        Assert.Equal(["p1", "o1"], Assert.Single(output.Rows.Rows));
    }

    [Fact]
    public void Released_columns_may_include_a_key_column_beside_other_columns()
    {
        var output = App.Run(new AppInput(Data, Data, Match with { ReleasedColumns = ["id", "party1.v"] }, Own, Peer));

        Assert.Equal(["id", "party1.v"], output.Rows!.Columns);
        Assert.Equal(["k", "1"], Assert.Single(output.Rows.Rows));
    }
}
