using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>
/// Secure matching: inner join of the two parties' tables on the policy's key column (exact, ordinal match).
/// Releases the number of joined rows, and the joined rows themselves only when the output policy names
/// <see cref="ResultKind.JoinedRows"/> for the party this enclave serves.
/// </summary>
public sealed class SecureMatchApp : IEnclaveApp
{
    // A build marker the demo's tampered-app attack flips one byte of; changing it changes nothing but the measurement.
    internal const string BuildMarker = "TWINSEAL-SECURE-MATCH-APP-BUILD-1";

    /// <inheritdoc />
    public string Name => "secure-match";

    /// <inheritdoc />
    public AppOutput Run(AppInput input)
    {
        var policy = input.Policy;
        if (!string.Equals(policy.Computation, Name, StringComparison.Ordinal))
            throw new ProtocolException("outside-output-policy", $"The output policy allows '{policy.Computation}', not '{Name}'.");
        var ownKey = input.Own.IndexOf(policy.KeyColumn);
        var peerKey = input.Peer.IndexOf(policy.KeyColumn);
        if (ownKey < 0) throw new ProtocolException("schema-mismatch", $"Party '{input.OwnParty}''s table has no key column '{policy.KeyColumn}'.");
        if (peerKey < 0) throw new ProtocolException("schema-mismatch", $"Party '{input.PeerParty}''s table has no key column '{policy.KeyColumn}'.");
        var releaseRows = policy.Result == ResultKind.JoinedRows;
        // Whatever is released (rows or just the count) goes only to the recipient the parties agreed on.
        if (!string.Equals(policy.Recipient, input.OwnParty, StringComparison.Ordinal))
            throw new ProtocolException("outside-output-policy", $"The output policy releases its result ({policy.Result}) to '{policy.Recipient}', not to '{input.OwnParty}'.");

        // Build on the smaller side; probe with the larger one.
        var peerIndex = new Dictionary<string, List<int>>(input.Peer.Rows.Count, StringComparer.Ordinal);
        for (var i = 0; i < input.Peer.Rows.Count; i++)
        {
            var k = input.Peer.Rows[i][peerKey];
            if (k.Length == 0) continue; // an empty key matches nothing, as NULL in SQL
            if (!peerIndex.TryGetValue(k, out var list)) peerIndex[k] = list = new List<int>(1);
            list.Add(i);
        }

        long matches = 0;
        var rows = releaseRows ? new List<string[]>() : null;
        var columns = releaseRows ? JoinedColumns(input, peerKey) : null;
        foreach (var own in input.Own.Rows)
        {
            var k = own[ownKey];
            if (k.Length == 0 || !peerIndex.TryGetValue(k, out var hits)) continue;
            matches += hits.Count;
            if (rows is null) continue;
            foreach (var h in hits) rows.Add(JoinRow(own, input.Peer.Rows[h], peerKey));
        }
        return new AppOutput(matches, rows is null ? null : new Table(columns!, rows));
    }

    private static List<string> JoinedColumns(AppInput input, int peerKey)
    {
        var cols = new List<string>(input.Own.Columns);
        var taken = new HashSet<string>(cols, StringComparer.Ordinal);
        for (var i = 0; i < input.Peer.Columns.Count; i++)
        {
            if (i == peerKey) continue;
            var name = input.Peer.Columns[i];
            // Same-named columns from the other party are prefixed with its id so nothing is silently overwritten.
            // Repeat the prefix until the name is free: the own table may already have a column named "<peer>.<name>".
            while (!taken.Add(name)) name = $"{input.PeerParty}.{name}";
            cols.Add(name);
        }
        return cols;
    }

    private static string[] JoinRow(string[] own, string[] peer, int peerKey)
    {
        var row = new string[own.Length + peer.Length - 1];
        own.CopyTo(row, 0);
        var j = own.Length;
        for (var i = 0; i < peer.Length; i++)
            if (i != peerKey) row[j++] = peer[i];
        return row;
    }
}
