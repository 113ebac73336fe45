using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps;

/// <summary>Where a joined column's cells come from.</summary>
/// <param name="FromPeer">False: the own table; true: the other party's table.</param>
/// <param name="Index">Column position in that table.</param>
/// <param name="KeyOrdinal">For an own key column: its position in the key list (an outer join fills it from the other side's key when the own row is missing); otherwise -1.</param>
internal readonly record struct JoinedColumn(string Name, bool FromPeer, int Index, int KeyOrdinal);

/// <summary>
/// The columns of a joined row: the own table's columns, then the other party's columns without its key columns.
/// Each peer column gets the policy's <see cref="OutputPolicy.PeerColumnPrefix"/>, if any; a name still taken is
/// prefixed with the peer's party id (repeatedly, until the name is free).
/// Released columns, group-by columns and measure columns in the output policy use these names.
/// </summary>
internal sealed class JoinedSchema
{
    private readonly int[] _peerKeys;

    private JoinedSchema(IReadOnlyList<JoinedColumn> columns, int[] peerKeys)
    {
        Columns = columns;
        _peerKeys = peerKeys;
    }

    public IReadOnlyList<JoinedColumn> Columns { get; }

    public IReadOnlyList<string> Names => Columns.Select(c => c.Name).ToList();

    public static JoinedSchema Create(Table own, Table peer, int[] ownKeys, int[] peerKeys, string peerParty, string? peerPrefix)
    {
        var cols = new List<JoinedColumn>(own.Columns.Count + peer.Columns.Count);
        var taken = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < own.Columns.Count; i++)
        {
            taken.Add(own.Columns[i]);
            cols.Add(new JoinedColumn(own.Columns[i], false, i, Array.IndexOf(ownKeys, i)));
        }
        for (var i = 0; i < peer.Columns.Count; i++)
        {
            if (Array.IndexOf(peerKeys, i) >= 0) continue;
            var name = peerPrefix + peer.Columns[i];
            while (!taken.Add(name)) name = $"{peerParty}.{name}";
            cols.Add(new JoinedColumn(name, true, i, -1));
        }
        return new JoinedSchema(cols, peerKeys);
    }

    /// <summary>
    /// The own columns among <paramref name="released"/> (all of them when null), found from the own table alone: own
    /// columns come first and keep their names (<see cref="Create"/>), so a released name that is an own column's is that column.
    /// </summary>
    public static IEnumerable<int> OwnColumnsNamed(Table own, IReadOnlyList<string>? released)
        => released is null ? Enumerable.Range(0, own.Columns.Count) : released.Select(own.IndexOf).Where(i => i >= 0);

    /// <summary>The column named <paramref name="name"/>, or <c>schema-mismatch</c> naming the policy member that asked for it.</summary>
    public JoinedColumn Find(string name, string usedAs)
    {
        foreach (var c in Columns)
            if (string.Equals(c.Name, name, StringComparison.Ordinal)) return c;
        throw new ProtocolException("schema-mismatch", $"The output policy's {usedAs} '{name}' is not a column of the joined rows (they have: {string.Join(", ", Columns.Select(c => c.Name))}).");
    }

    /// <summary>Only the released columns, in the policy's order (all columns when <paramref name="released"/> is null).</summary>
    public JoinedSchema Project(IReadOnlyList<string>? released)
        => released is null ? this : new JoinedSchema(released.Select(r => Find(r, "released column")).ToList(), _peerKeys);

    /// <summary>One joined row; a missing side (outer join) gives empty cells, except that own key columns then show the other side's key.</summary>
    public string[] Row(string[]? own, string[]? peer)
    {
        var row = new string[Columns.Count];
        for (var i = 0; i < row.Length; i++) row[i] = Cell(Columns[i], own, peer);
        return row;
    }

    /// <summary>
    /// One cell of a joined row in SQL over the tables aliased <c>o</c> and <c>p</c> (<see cref="Engine.EngineTables"/>),
    /// as <see cref="Cell"/> gives it: a missing side gives an empty cell, an own key column the other side's key.
    /// </summary>
    public string SqlCell(JoinedColumn c) => c switch
    {
        { FromPeer: true } => $"coalesce(p.{Engine.EngineTables.Column(c.Index)}, '')",
        { KeyOrdinal: >= 0 } => $"CASE WHEN o.rn IS NULL THEN coalesce(p.{Engine.EngineTables.Column(_peerKeys[c.KeyOrdinal])}, '') ELSE coalesce(o.{Engine.EngineTables.Column(c.Index)}, '') END",
        _ => $"coalesce(o.{Engine.EngineTables.Column(c.Index)}, '')",
    };

    /// <summary>One cell of a joined row.</summary>
    public string Cell(JoinedColumn c, string[]? own, string[]? peer)
    {
        if (c.FromPeer) return peer is null ? "" : peer[c.Index];
        if (own is not null) return own[c.Index];
        return c.KeyOrdinal >= 0 && peer is not null ? peer[_peerKeys[c.KeyOrdinal]] : "";
    }
}

/// <summary>What every join needs: the key positions on both sides, the normalisation and the joined columns.</summary>
internal sealed record JoinSetup(int[] OwnKeys, int[] PeerKeys, KeyNormalisation Normalisation, JoinedSchema Schema)
{
    /// <summary>
    /// The own columns a join reads, found from the own table and the policy alone (for <see cref="IEnclaveApp.Begin"/>):
    /// its key columns, and when it releases rows the released own columns too.
    /// </summary>
    public static IEnumerable<int> OwnColumns(AppStart start, bool releasesRows)
    {
        var keys = JoinKeys.Resolve(start.Own, start.Policy.JoinColumns(), start.OwnParty);
        return releasesRows ? keys.Concat(JoinedSchema.OwnColumnsNamed(start.Own, start.Policy.ReleasedColumns)) : keys;
    }

    public static JoinSetup Create(AppInput input)
    {
        var keys = input.Policy.JoinColumns();
        var ownKeys = JoinKeys.Resolve(input.Own, keys, input.OwnParty);
        var peerKeys = JoinKeys.Resolve(input.Peer, keys, input.PeerParty);
        return new JoinSetup(ownKeys, peerKeys, input.Policy.Normalisation, JoinedSchema.Create(input.Own, input.Peer, ownKeys, peerKeys, input.PeerParty, input.Policy.PeerColumnPrefix));
    }
}
