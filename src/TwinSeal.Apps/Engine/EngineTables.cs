using System.Globalization;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Apps.Engine;

/// <summary>
/// How the two parties' tables sit in the <see cref="IsolatedDatabase"/>: <c>own</c> and <c>peer</c>, one VARCHAR column
/// per table column, named by position (<c>c0</c>, <c>c1</c>, …) so that no column name a party chose is ever part of SQL
/// text; an empty cell is NULL. Rows are stored in table order, so a row's <c>rowid</c> is its position (from 0).
/// </summary>
internal static class EngineTables
{
    /// <summary>The recipient's own table.</summary>
    public const string Own = "own";

    /// <summary>The other party's table.</summary>
    public const string Peer = "peer";

    /// <summary>
    /// A locked-down database holding both tables of <paramref name="input"/>, every column, in table order. With
    /// <paramref name="releasePeer"/>, for an app that reads the other party's cells only through the engine from then
    /// on, the decrypted table is released once read (<see cref="AppInput.ReleasePeer"/>).
    /// </summary>
    public static IsolatedDatabase Open(AppInput input, bool releasePeer) => Released(Read(input, own: null, peer: null, ordered: true), input, releasePeer);

    /// <summary>For a computation that reads every column of both tables, begun before the other party's dataset arrived: the own table, every column, in order.</summary>
    public static OwnTableRead Begin(Table own) => Begin(own, AllColumns(own), ordered: true);

    private static HashSet<int> AllColumns(Table table) => [.. Enumerable.Range(0, table.Columns.Count)];

    /// <summary>
    /// A locked-down database holding only the columns of each table a join needs: its key columns and the released
    /// columns of <paramref name="released"/> (none for a count); in table order only when <paramref name="ordered"/>.
    /// <paramref name="releasePeer"/> as for <see cref="Open(AppInput, bool)"/>.
    /// </summary>
    public static IsolatedDatabase Open(AppInput input, JoinSetup join, JoinedSchema? released, bool ordered, bool releasePeer, IEnumerable<int>? ownColumns = null)
    {
        var own = new HashSet<int>(join.OwnKeys.Concat(ownColumns ?? []));
        var peer = new HashSet<int>(join.PeerKeys);
        foreach (var c in released?.Columns ?? []) (c.FromPeer ? peer : own).Add(c.Index);
        return Released(Read(input, own, peer, ordered), input, releasePeer);
    }

    // Both tables, the own one from the early read when it fits (columns null: all of them).
    private static IsolatedDatabase Read(AppInput input, IReadOnlySet<int>? own, IReadOnlySet<int>? peer, bool ordered)
        => (input.Begun as OwnTableRead)?.Take(own ?? AllColumns(input.Own), ordered) is { } begun
            ? begun.Finish([new(Peer, input.Peer, peer)])
            : IsolatedDatabase.Open([new(Own, input.Own, own), new(Peer, input.Peer, peer)], ordered);

    /// <summary>
    /// For a join computation begun before the other party's dataset arrived (<see cref="Protocol.Apps.IEnclaveApp.Begin"/>):
    /// reads the own table's <paramref name="ownColumns"/> on a worker thread, for <see cref="Open(AppInput, JoinSetup, JoinedSchema?, bool, bool, IEnumerable{int}?)"/>
    /// to take with the same columns and order.
    /// </summary>
    public static OwnTableRead Begin(Table own, IEnumerable<int> ownColumns, bool ordered) => OwnTableRead.Start(own, ownColumns.ToHashSet(), ordered);

    private static IsolatedDatabase Released(IsolatedDatabase db, AppInput input, bool releasePeer)
    {
        if (releasePeer) input.ReleasePeer?.Invoke();
        return db;
    }

    /// <summary>
    /// For approved analyses: each party's table as a view named by its party id, with the table's own column names
    /// (quoted, so any name is an identifier and none is SQL). DuckDB compares names without regard to case, so a table
    /// whose column names differ only in case cannot be shown this way and is refused.
    /// </summary>
    public static void PartyViews(IsolatedDatabase db, AppInput input)
    {
        View(db, input.OwnParty, Own, input.Own);
        View(db, input.PeerParty, Peer, input.Peer);
    }

    private static void View(IsolatedDatabase db, string party, string table, Table source)
    {
        var clash = source.Columns.GroupBy(c => c, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new ProtocolException("schema-mismatch", $"Party '{party}''s table has columns that differ only in case ({string.Join(", ", clash)}); SQL analyses need names that differ otherwise.");
        var columns = string.Join(", ", source.Columns.Select((name, i) => $"{Column(i)} AS {Quote(name)}"));
        db.Execute($"CREATE VIEW {Quote(party)} AS SELECT {columns} FROM {table}");
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>The SQL name of column <paramref name="index"/> of a loaded table.</summary>
    public static string Column(int index) => "c" + index.ToString(CultureInfo.InvariantCulture);
}
