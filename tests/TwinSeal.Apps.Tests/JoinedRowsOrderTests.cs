using TwinSeal.Apps.Engine;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using static TwinSeal.Apps.Tests.ComputationReference;

namespace TwinSeal.Apps.Tests;

/// <summary>
/// The joined rows of secure match and data integration, made in two passes (row-number pairs, then the cells fetched by
/// row number), come out in the documented order and not merely as the same multiset: own-table order, for one own row
/// the other table's order, and with a full outer join the unmatched rows of the other party after all own rows, in
/// their table order. A party that duplicates keys on both sides, leaves keys empty or uses keys that only meet after
/// normalisation gets exactly the reference rows, row for row. Small tables take one pass (<see cref="JoinQuery.OnePass"/>);
/// both ways are held to the reference and to each other byte for byte.
/// </summary>
public sealed class JoinedRowsOrderTests
{
    private static readonly SecureMatchApp App = new();
    private static readonly string[] OwnColumns = ["name", "id", "region", "city"];
    private static readonly string[] PeerColumns = ["region", "id", "name", "score"];

    private static string[] Keys(bool multi) => multi ? ["id", "region"] : ["id"];

    public static TheoryData<int, KeyNormalisation, bool, JoinKind> OrderCases()
    {
        var data = new TheoryData<int, KeyNormalisation, bool, JoinKind>();
        var seed = 9000;
        foreach (var n in Enum.GetValues<KeyNormalisation>())
            foreach (var multi in new[] { false, true })
                foreach (var kind in new[] { JoinKind.Inner, JoinKind.Left, JoinKind.FullOuter })
                    data.Add(seed++, n, multi, kind);
        return data;
    }

    private static readonly string[] Released = ["id", "score", "city", "name", "party1.name"];

    [Theory]
    [MemberData(nameof(OrderCases))]
    public void Joined_rows_with_duplicate_and_empty_keys_on_both_sides_equal_the_reference_row_for_row_in_order(int seed, KeyNormalisation n, bool multi, JoinKind kind)
    {
        var input = Case(seed, n, multi, kind);

        var output = App.Run(input);

        AssertReference(input, n, multi, kind, output.Rows!);
    }

    [Theory]
    [MemberData(nameof(OrderCases))]
    public void Joined_rows_made_in_two_passes_equal_the_reference_and_the_one_pass_rows_byte_for_byte(int seed, KeyNormalisation n, bool multi, JoinKind kind)
    {
        var input = Case(seed, n, multi, kind);
        var join = JoinSetup.Create(input);
        var released = join.Schema.Project(Released);
        using var db = EngineTables.Open(input, join, released, ordered: true, releasePeer: false);
        var query = new JoinQuery(db, join);

        var two = query.Rows(released, kind, onePass: false);
        var one = query.Rows(released, kind, onePass: true);

        AssertReference(input, n, multi, kind, two);
        Assert.Equal(one.RowCount, two.RowCount);
        Assert.Equal(one.Csv.ToArray(), two.Csv.ToArray());
    }

    [Theory]
    [InlineData(78_227_840L, 17L << 30, true)] // 1M × 1M demo rows on a 24 GB machine
    [InlineData(782_279_426L, 17L << 30, false)] // 10M × 10M: one pass would hold 0.7 GB more
    [InlineData(256L << 20, 17L << 30, true)]
    [InlineData((256L << 20) + 1, 17L << 30, false)]
    [InlineData(78_227_840L, 1L << 30, false)] // a small engine: more than a sixteenth of its memory
    public void One_pass_only_for_inputs_up_to_256_MiB_and_a_sixteenth_of_the_memory_limit(long inputBytes, long memoryLimitBytes, bool onePass)
        => Assert.Equal(onePass, JoinQuery.OnePass(inputBytes, memoryLimitBytes));

    private static AppInput Case(int seed, KeyNormalisation n, bool multi, JoinKind kind)
    {
        var rng = new Random(seed);
        var own = RandomTable(rng, 120, OwnColumns, Keys(multi));
        var peer = RandomTable(rng, 90, PeerColumns, Keys(multi));
        var computation = kind == JoinKind.Inner ? "secure-match" : "data-integration";
        var policy = new OutputPolicy(computation, Keys(multi)[0], ResultKind.JoinedRows, Own, KeyColumns: multi ? Keys(multi) : null, Normalisation: n,
            JoinKind: kind, ReleasedColumns: Released);
        return new AppInput(own, peer, policy, Own, Peer);
    }

    private static void AssertReference(AppInput input, KeyNormalisation n, bool multi, JoinKind kind, Table rows)
    {
        var expected = Join(input.Own, input.Peer, Keys(multi), n, kind, Released);
        Assert.Equal(expected.Columns, rows.Columns);
        Assert.Equal(expected.Rows.Count, rows.Rows.Count);
        for (var i = 0; i < expected.Rows.Count; i++) Assert.Equal(expected.Rows[i], rows.Rows[i]);
    }
}
