namespace TwinSeal.Protocol.Apps;

/// <summary>
/// A table of text cells with named columns. The isolated area holds every loaded or received table in its CSV form only
/// (<see cref="FromCsv"/>): the engine reads those bytes with its own CSV reader, so no cell becomes a .NET string on the
/// way. A table made of rows (<see cref="Table(IReadOnlyList{string}, IReadOnlyList{string[]})"/>: results, tests) gets
/// its CSV form when asked for it, and a CSV table its rows; each is made once, with the one CSV dialect of
/// <see cref="CsvDialect"/>.
/// </summary>
public sealed class Table
{
    private IReadOnlyList<string[]>? _rows;
    private ReadOnlyMemory<byte>? _csv;

    /// <summary>A table of the given rows; each has exactly <paramref name="columns"/>.Count cells.</summary>
    public Table(IReadOnlyList<string> columns, IReadOnlyList<string[]> rows)
    {
        Columns = columns;
        _rows = rows;
        RowCount = rows.Count;
    }

    private Table(IReadOnlyList<string> columns, long rowCount, ReadOnlyMemory<byte> csv)
    {
        Columns = columns;
        RowCount = rowCount;
        _csv = csv;
    }

    /// <summary>
    /// A table in its CSV form (<see cref="CsvDialect"/>, header row first), already checked by whoever made it: its header
    /// is <paramref name="columns"/> and it has <paramref name="rowCount"/> rows of exactly that many cells.
    /// </summary>
    public static Table FromCsv(IReadOnlyList<string> columns, long rowCount, ReadOnlyMemory<byte> csv) => new(columns, rowCount, csv);

    /// <summary>Column names, in order.</summary>
    public IReadOnlyList<string> Columns { get; }

    /// <summary>Number of rows (the header not counted).</summary>
    public long RowCount { get; }

    /// <summary>Rows; each has exactly <see cref="Columns"/>.Count cells. For a CSV table, parsed on first use: one string per cell.</summary>
    public IReadOnlyList<string[]> Rows => _rows ??= CsvDialect.ReadRows(_csv!.Value, Columns.Count);

    /// <summary>The table's CSV form with its header row; for a table of rows, written on first use.</summary>
    public ReadOnlyMemory<byte> Csv => _csv ??= CsvDialect.Write(Columns, _rows!);

    /// <summary>Index of a column, or -1.</summary>
    public int IndexOf(string column)
    {
        for (var i = 0; i < Columns.Count; i++)
            if (string.Equals(Columns[i], column, StringComparison.Ordinal)) return i;
        return -1;
    }
}

/// <summary>What an app is given: its own party's table, the other party's verified table, and the agreed output policy.</summary>
/// <param name="Analysis">With computation <c>analysis</c>: which approved template to run, with the recipient's parameter values.</param>
public sealed record AppInput(Table Own, Table Peer, OutputPolicy Policy, string OwnParty, string PeerParty, AnalysisChoice? Analysis = null)
{
    /// <summary>
    /// Wipes and frees the other party's decrypted table, for an app whose engine has read its own copy and that reads
    /// <see cref="Peer"/>'s cells no more: the isolated area would otherwise hold it to the end of the computation (at
    /// 10M rows, 0.4 GB at the peak). <see cref="Table.Csv"/> and <see cref="Table.Rows"/> of <see cref="Peer"/> throw
    /// afterwards; its columns and row count stay. Null where nothing is freed early (tests, the known-answer run).
    /// </summary>
    public Action? ReleasePeer { get; init; }

    /// <summary>
    /// What <see cref="IEnclaveApp.Begin"/> started for this computation with the own table alone, while the other
    /// party's dataset was still arriving; only the app that made it knows what it is. Whoever made the input disposes it.
    /// </summary>
    public IDisposable? Begun { get; init; }
}

/// <summary>What an app knows of a computation before the other party's dataset has arrived: its own table and the policy.</summary>
public sealed record AppStart(Table Own, OutputPolicy Policy, string OwnParty);

/// <summary>What an app releases to the policy's recipient, and nothing the policy did not name.</summary>
/// <param name="Rows">The released table (joined rows or aggregates), when the policy releases one.</param>
/// <param name="DistinctMatchedKeys">With <see cref="ResultKind.MatchCount"/> or <see cref="ResultKind.IntersectionSize"/>: the number of distinct keys (after normalisation) present in both tables; otherwise null.</param>
/// <param name="SkippedEmptyKeys">Rows of the recipient's own table that have no key (an empty key cell) and so matched nothing. Never a count about the other party's table.</param>
/// <param name="PeerRows">The other party's row count, only when the policy says <see cref="OutputPolicy.ReleasePeerRowCount"/>; otherwise null.</param>
/// <param name="Noise">With <see cref="OutputPolicy.DifferentialPrivacy"/>: how the released counts and aggregates were made noisy; otherwise null.</param>
public sealed record AppOutput(Table? Rows, long? DistinctMatchedKeys, long SkippedEmptyKeys, long? PeerRows = null, NoiseDescription? Noise = null);

/// <summary>An app that runs inside the isolated area. Implementations live in the measured app bundle.</summary>
public interface IEnclaveApp
{
    /// <summary>The bundle's app name (it may serve several computations, chosen by <see cref="OutputPolicy.Computation"/>).</summary>
    string Name { get; }

    /// <summary>Runs the computation; throws <see cref="ProtocolException"/> for a request outside the output policy.</summary>
    AppOutput Run(AppInput input);

    /// <summary>
    /// Starts what the computation can do with the own table alone (reading it into the engine), so that it runs while
    /// the other party's dataset is still arriving and being decrypted and verified; <see cref="Run"/> finds it in
    /// <see cref="AppInput.Begun"/>. Nothing of it depends on the other party's data, and nothing leaves before
    /// <see cref="Run"/>, which decides everything again and does without it when it does not fit. Null: nothing to start.
    /// </summary>
    IDisposable? Begin(AppStart start) => null;
}
