using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>
/// <c>secure-match</c>: inner join on the key column(s). Releases the joined row count (<see cref="ResultKind.MatchCount"/>),
/// the number of distinct keys in both tables (<see cref="ResultKind.IntersectionSize"/>, carried in
/// <see cref="AppOutput.MatchCount"/>) or the joined rows, limited to the released columns (<see cref="ResultKind.JoinedRows"/>).
/// </summary>
internal static class SecureMatch
{
    public static AppOutput Run(AppInput input)
    {
        var join = JoinSetup.Create(input);
        var result = input.Policy.Result;
        // Index the other party's rows; probe with our own, so joined rows come out in our table's order.
        var index = new KeyIndex(input.Peer, join.PeerKeys, join.Normalisation);

        if (result == ResultKind.IntersectionSize)
        {
            var counted = new HashSet<string>(StringComparer.Ordinal);
            foreach (var own in input.Own.Rows)
            {
                var key = JoinKeys.Of(own, join.OwnKeys, join.Normalisation);
                if (index.TryFind(key, out _, out _)) counted.Add(key!);
            }
            return new AppOutput(counted.Count, null);
        }

        long matches = 0;
        var released = result == ResultKind.JoinedRows ? join.Schema.Project(input.Policy.ReleasedColumns) : null;
        var rows = released is null ? null : new List<string[]>();
        foreach (var own in input.Own.Rows)
        {
            if (!index.TryFind(JoinKeys.Of(own, join.OwnKeys, join.Normalisation), out var hit, out var count)) continue;
            matches += count;
            if (rows is null) continue;
            for (; hit >= 0; hit = index.Next(hit)) rows.Add(released!.Row(own, input.Peer.Rows[hit]));
        }
        return new AppOutput(matches, released is null ? null : new Table(released.Names, rows!));
    }
}
