using TwinSeal.Apps.Engine;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>
/// <c>secure-match</c>: inner join on the key column(s). Releases the number of distinct keys in both tables
/// (<see cref="ResultKind.MatchCount"/> and <see cref="ResultKind.IntersectionSize"/>, both in
/// <see cref="AppOutput.DistinctMatchedKeys"/>) or the joined rows, limited to the released columns (<see cref="ResultKind.JoinedRows"/>).
/// </summary>
/// <remarks>
/// Counts are of distinct keys, never of joined pairs: with pairs, a party that puts candidate i in its own table 2^i
/// times reads the other party's membership of every candidate as the bits of one count. With distinct keys, repeating
/// an own key changes nothing. Own rows with an empty key match nothing and are counted in
/// <see cref="AppOutput.SkippedEmptyKeys"/>; nothing is counted about the other party's table unless the policy
/// releases its row count. With <see cref="OutputPolicy.MinimumOwnRows"/>, a count is refused (<c>own-table-too-small</c>)
/// for an own table of fewer distinct non-empty keys.
/// </remarks>
internal static class SecureMatch
{
    public static AppOutput Run(AppInput input)
    {
        var join = JoinSetup.Create(input);
        if (!ReleasesRows(input.Policy))
        {
            // A count reads only the key columns, in any order.
            using var keys = EngineTables.Open(input, join, released: null, ordered: false, releasePeer: true);
            var query = new JoinQuery(keys, join);
            // Decided on the own table alone, before the other party's is looked at, so the refusal says nothing about it.
            if (input.Policy.MinimumOwnRows is { } minimum && query.OwnDistinctKeys() is var ownKeys && ownKeys < minimum)
                throw new ProtocolException("own-table-too-small", $"Your table holds {ownKeys} distinct non-empty keys; the output policy counts matches only for a table of at least {minimum}.");
            return new AppOutput(null, query.DistinctMatchedKeys(), query.Skipped(), PeerRowCount.Released(input));
        }

        var released = join.Schema.Project(input.Policy.ReleasedColumns);
        using var db = EngineTables.Open(input, join, released, ordered: true, releasePeer: true);
        var rows = new JoinQuery(db, join);
        return new AppOutput(rows.Rows(released, JoinKind.Inner), null, rows.Skipped(), PeerRowCount.Released(input));
    }

    /// <summary>The own table read as <see cref="Run"/> reads it (key columns; for rows also the released own columns, in order), started early.</summary>
    public static IDisposable Begin(AppStart start)
    {
        var rows = ReleasesRows(start.Policy);
        return EngineTables.Begin(start.Own, JoinSetup.OwnColumns(start, rows), ordered: rows);
    }

    private static bool ReleasesRows(OutputPolicy policy) => policy.Result == ResultKind.JoinedRows;
}

/// <summary>The other party's row count, released only when the policy names it.</summary>
internal static class PeerRowCount
{
    public static long? Released(AppInput input) => input.Policy.ReleasePeerRowCount ? input.Peer.RowCount : null;
}
