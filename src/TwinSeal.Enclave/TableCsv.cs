using System.Security.Cryptography;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>CSV in and out of the isolated area (RFC 4180, header row required), via the Sep parser.</summary>
public static class TableCsv
{
    /// <summary>Parses CSV bytes; throws <see cref="ProtocolException"/> (<c>bad-csv</c>) naming the line for anything malformed.</summary>
    public static Table Parse(byte[] csv, string what) => TableLoader.ParseCsv(csv, what);

    /// <summary>The table's CSV form (<see cref="CsvDialect"/>), with a header row.</summary>
    public static byte[] Write(Table table)
    {
        ArgumentNullException.ThrowIfNull(table);
        return CsvDialect.Write(table.Columns, table.Rows);
    }

    /// <summary>Lower-case hex SHA-256.</summary>
    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>The isolated area's storage: tables loaded by its party (S12), held in the enclave process only, in CSV form.</summary>
public sealed class TableStorage
{
    private readonly Dictionary<string, (Table Table, string Sha256, IDisposable? Holding)> _tables = new(StringComparer.Ordinal);

    /// <summary>Checks and stores CSV under <paramref name="name"/>, replacing any table of that name.</summary>
    public LoadTableResult Load(string name, byte[] csv)
    {
        ValidateName(name);
        return Store(name, TableCsv.Parse(csv, $"table '{name}'"));
    }

    /// <summary>Stores a checked table; its CSV form is what gets encrypted and what its digest is of.</summary>
    public LoadTableResult Store(string name, Table table)
    {
        var described = Describe(name, table);
        Keep(name, table, described.Sha256, null);
        return described;
    }

    /// <summary>What storing <paramref name="table"/> as <paramref name="name"/> reports: rows, columns and the digest of its CSV form.</summary>
    public static LoadTableResult Describe(string name, Table table)
    {
        ArgumentNullException.ThrowIfNull(table);
        ValidateName(name);
        return new LoadTableResult(name, table.RowCount, table.Columns, TableCsv.Sha256(table.Csv.Span));
    }

    /// <summary>
    /// Keeps a described table, with what holds its memory (disposed when the table is replaced). Commands run one at a
    /// time, so no computation still reads a table when a load replaces it.
    /// </summary>
    internal void Keep(string name, Table table, string sha256, IDisposable? holding)
    {
        var replaced = _tables.TryGetValue(name, out var old) ? old.Holding : null;
        _tables[name] = (table, sha256, holding);
        replaced?.Dispose();
    }

    /// <summary>Throws <c>bad-table-name</c> unless <paramref name="name"/> is 1–64 letters, digits, '-' or '_'.</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ProtocolException("bad-table-name", "A table name is 1–64 letters, digits, '-' or '_'.");
    }

    /// <summary>A stored table; throws if it was never loaded.</summary>
    public (Table Table, string Sha256) Get(string name)
        => _tables.TryGetValue(name, out var t) ? (t.Table, t.Sha256) : throw new ProtocolException("unknown-table", $"No table '{name}' is loaded in this isolated area.");
}
