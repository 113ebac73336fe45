using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;
using static TwinSeal.Apps.Tests.ComputationReference;

namespace TwinSeal.Apps.Tests;

public sealed class ComputationDataIntegrationTests
{
    private static readonly SecureMatchApp App = new();

    private static readonly string[] OwnColumns = ["name", "id", "region", "city"];
    private static readonly string[] PeerColumns = ["region", "id", "name", "score"];

    private static string[] Keys(bool multi) => multi ? ["id", "region"] : ["id"];

    private static OutputPolicy Policy(JoinKind kind, string[] keys, KeyNormalisation n = KeyNormalisation.None, IReadOnlyList<string>? released = null)
        => new("data-integration", keys[0], ResultKind.JoinedRows, Own, KeyColumns: keys.Length > 1 ? keys : null, Normalisation: n, JoinKind: kind, ReleasedColumns: released);

    private static (Table Own, Table Peer) RandomTables(int seed, int ownRows, int peerRows, bool multi)
    {
        var rng = new Random(seed);
        return (RandomTable(rng, ownRows, OwnColumns, Keys(multi)), RandomTable(rng, peerRows, PeerColumns, Keys(multi)));
    }

    private static AppOutput Run(Table own, Table peer, OutputPolicy policy) => App.Run(new AppInput(own, peer, policy, Own, Peer));

    [Theory]
    [MemberData(nameof(Cases), MemberType = typeof(ComputationReference))]
    public void Left_join_rows_equal_the_reference_left_join(int seed, int ownRows, int peerRows, KeyNormalisation n, bool multi)
    {
        var (own, peer) = RandomTables(seed, ownRows, peerRows, multi);

        var output = Run(own, peer, Policy(JoinKind.Left, Keys(multi), n));

        var expected = Join(own, peer, Keys(multi), n, JoinKind.Left);
        Assert.Equal(expected.Columns, output.Rows!.Columns);
        Assert.Equal(Tables.Multiset(expected.Rows), Tables.Multiset(output.Rows.Rows));
    }

    [Theory]
    [MemberData(nameof(Cases), MemberType = typeof(ComputationReference))]
    public void Full_outer_join_rows_equal_the_reference_full_outer_join(int seed, int ownRows, int peerRows, KeyNormalisation n, bool multi)
    {
        var (own, peer) = RandomTables(seed, ownRows, peerRows, multi);

        var output = Run(own, peer, Policy(JoinKind.FullOuter, Keys(multi), n));

        var expected = Join(own, peer, Keys(multi), n, JoinKind.FullOuter);
        Assert.Equal(expected.Columns, output.Rows!.Columns);
        Assert.Equal(Tables.Multiset(expected.Rows), Tables.Multiset(output.Rows.Rows));
    }

    [Theory]
    [MemberData(nameof(Cases), MemberType = typeof(ComputationReference))]
    public void Full_outer_join_with_released_columns_equals_the_reference_projected_onto_them(int seed, int ownRows, int peerRows, KeyNormalisation n, bool multi)
    {
        var (own, peer) = RandomTables(seed, ownRows, peerRows, multi);
        string[] released = ["id", "score", "city"];

        var output = Run(own, peer, Policy(JoinKind.FullOuter, Keys(multi), n, released));

        var expected = Join(own, peer, Keys(multi), n, JoinKind.FullOuter, released);
        Assert.Equal(released, output.Rows!.Columns);
        Assert.Equal(Tables.Multiset(expected.Rows), Tables.Multiset(output.Rows.Rows));
    }

    [Fact]
    public void Left_join_keeps_unmatched_own_rows_with_empty_peer_cells_and_drops_unmatched_peer_rows()
    {
        var own = Tables.Of(["id", "o"], ["k", "o1"], ["z", "o2"]);
        var peer = Tables.Of(["id", "p"], ["k", "p1"], ["y", "p2"]);

        var output = Run(own, peer, Policy(JoinKind.Left, ["id"]));

        Assert.Equal<string[]>([["k", "o1", "p1"], ["z", "o2", ""]], output.Rows!.Rows);
    }

    [Fact]
    public void Left_join_keeps_own_rows_with_an_empty_key_unmatched()
    {
        var own = Tables.Of(["id", "o"], ["", "o1"]);
        var peer = Tables.Of(["id", "p"], ["", "p1"]);

        var output = Run(own, peer, Policy(JoinKind.Left, ["id"]));

        Assert.Equal(["", "o1", ""], Assert.Single(output.Rows!.Rows));
    }

    [Fact]
    public void Full_outer_join_appends_unmatched_peer_rows_with_their_key_in_the_key_columns_and_other_own_cells_empty()
    {
        var own = Tables.Of(["o", "id", "region"], ["o1", "k", "x"]);
        var peer = Tables.Of(["region", "id", "p"], ["x", "k", "p1"], ["y", "j", "p2"]);

        var output = Run(own, peer, Policy(JoinKind.FullOuter, ["id", "region"]));

        Assert.Equal(["o", "id", "region", "p"], output.Rows!.Columns);
        Assert.Equal<string[]>([["o1", "k", "x", "p1"], ["", "j", "y", "p2"]], output.Rows.Rows);
    }

    [Fact]
    public void Full_outer_join_keeps_peer_rows_with_an_empty_key_unmatched()
    {
        var own = Tables.Of(["id", "o"], ["", "o1"]);
        var peer = Tables.Of(["id", "p"], ["", "p1"]);

        var output = Run(own, peer, Policy(JoinKind.FullOuter, ["id"]));

        Assert.Equal<string[]>([["", "o1", ""], ["", "", "p1"]], output.Rows!.Rows);
        Assert.Equal(1, output.SkippedEmptyKeys);
    }

    [Fact]
    public void Left_join_with_an_empty_peer_table_releases_every_own_row()
    {
        var own = Tables.Of(["id", "o"], ["k", "o1"], ["j", "o2"]);
        var peer = Tables.Of(["id", "p"]);

        var output = Run(own, peer, Policy(JoinKind.Left, ["id"]));

        Assert.Equal<string[]>([["k", "o1", ""], ["j", "o2", ""]], output.Rows!.Rows);
    }

    [Fact]
    public void Full_outer_join_with_an_empty_own_table_releases_every_peer_row()
    {
        var own = Tables.Of(["id", "o"]);
        var peer = Tables.Of(["id", "p"], ["k", "p1"], ["k", "p2"]);

        var output = Run(own, peer, Policy(JoinKind.FullOuter, ["id"]));

        Assert.Equal<string[]>([["k", "", "p1"], ["k", "", "p2"]], output.Rows!.Rows);
    }

    [Fact]
    public void A_peer_row_matched_under_normalisation_is_not_repeated_as_unmatched_in_a_full_outer_join()
    {
        var own = Tables.Of(["id", "o"], [" K", "o1"]);
        var peer = Tables.Of(["id", "p"], ["k", "p1"]);

        var output = Run(own, peer, Policy(JoinKind.FullOuter, ["id"], KeyNormalisation.TrimLowerCase));

        Assert.Equal([" K", "o1", "p1"], Assert.Single(output.Rows!.Rows));
    }

    [Fact]
    public void Released_columns_filter_the_integrated_rows_in_the_policy_s_order()
    {
        var own = Tables.Of(["id", "name", "secret"], ["k", "own-name", "s"]);
        var peer = Tables.Of(["id", "name", "score"], ["k", "peer-name", "9"]);

        var output = Run(own, peer, Policy(JoinKind.Left, ["id"], released: ["party1.name", "id"]));

        Assert.Equal(["party1.name", "id"], output.Rows!.Columns);
        Assert.Equal(["peer-name", "k"], Assert.Single(output.Rows.Rows));
    }
}
