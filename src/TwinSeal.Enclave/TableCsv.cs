using System.Security.Cryptography;
using nietras.SeparatedValues;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Enclave;

/// <summary>CSV in and out of the isolated area (RFC 4180, header row required), via the Sep parser.</summary>
public static class TableCsv
{
    /// <summary>Parses CSV bytes; throws <see cref="ProtocolException"/> (<c>bad-csv</c>) naming the line for anything malformed.</summary>
    public static Table Parse(byte[] csv, string what) => TableLoader.ParseCsv(csv, what);

    /// <summary>Writes a table as CSV with a header row.</summary>
    public static byte[] Write(Table table)
    {
        using var ms = new MemoryStream();
        using (var writer = Sep.Writer(o => o with { Sep = new Sep(','), Escape = true }).To(ms, leaveOpen: true))
        {
            foreach (var r in table.Rows)
            {
                using var row = writer.NewRow();
                for (var i = 0; i < table.Columns.Count; i++) row[table.Columns[i]].Set(r[i]);
            }
            if (table.Rows.Count == 0)
            {
                // Sep writes the header with the first row; an empty result still gets its header.
                var header = string.Join(',', table.Columns.Select(Quote)) + "\n";
                ms.Write(System.Text.Encoding.UTF8.GetBytes(header));
            }
        }
        return ms.ToArray();
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;

    /// <summary>Lower-case hex SHA-256.</summary>
    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>The isolated area's storage: tables loaded by its party (S12), held in the enclave process only.</summary>
public sealed class TableStorage
{
    private readonly Dictionary<string, (Table Table, byte[] Csv, string Sha256)> _tables = new(StringComparer.Ordinal);

    /// <summary>Parses and stores a table under <paramref name="name"/>, replacing any table of that name.</summary>
    public LoadTableResult Load(string name, byte[] csv)
    {
        ValidateName(name);
        return Store(name, TableCsv.Parse(csv, $"table '{name}'"), csv);
    }

    /// <summary>Stores a table already parsed from <paramref name="csv"/> (its exact CSV form, which is what gets encrypted).</summary>
    public LoadTableResult Store(string name, Table table, byte[] csv)
    {
        ValidateName(name);
        var sha = TableCsv.Sha256(csv);
        _tables[name] = (table, csv, sha);
        return new LoadTableResult(name, table.Rows.Count, table.Columns, sha);
    }

    /// <summary>Throws <c>bad-table-name</c> unless <paramref name="name"/> is 1–64 letters, digits, '-' or '_'.</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new ProtocolException("bad-table-name", "A table name is 1–64 letters, digits, '-' or '_'.");
    }

    /// <summary>A stored table; throws if it was never loaded.</summary>
    public (Table Table, byte[] Csv, string Sha256) Get(string name)
        => _tables.TryGetValue(name, out var t) ? t : throw new ProtocolException("unknown-table", $"No table '{name}' is loaded in this isolated area.");
}
