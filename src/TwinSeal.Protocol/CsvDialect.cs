using System.Text;
using nietras.SeparatedValues;

namespace TwinSeal.Protocol.Apps;

/// <summary>
/// The one CSV dialect of TwinSeal's tables (RFC 4180: comma, double quotes doubled inside quoted cells, UTF-8, header
/// row first), through the Sep library. Whoever reads or writes a table's CSV form, in the isolated area or outside it,
/// does it here, so a table means the same cells everywhere.
/// </summary>
public static class CsvDialect
{
    /// <summary>A reader over <paramref name="csv"/> that unescapes quoted cells, treats the header as a row and leaves column counts to the caller.</summary>
    public static SepReader Reader(ReadOnlyMemory<byte> csv)
        => Sep.Reader(o => o with { Sep = new Sep(','), Unescape = true, DisableColCountCheck = true, HasHeader = false }).From(ReadStream(csv));

    /// <summary>The cells of one row as strings: a header's column names.</summary>
    public static string[] Cells(SepReader.Row row)
    {
        var cells = new string[row.ColCount];
        for (var i = 0; i < cells.Length; i++) cells[i] = row[i].ToString();
        return cells;
    }

    /// <summary>The rows below the header, one string per cell (the caller vouches that every row has <paramref name="width"/> cells).</summary>
    public static IReadOnlyList<string[]> ReadRows(ReadOnlyMemory<byte> csv, int width)
    {
        using var reader = Reader(csv);
        var rows = new List<string[]>();
        if (!reader.MoveNext()) return rows;
        foreach (var row in reader)
        {
            var cells = new string[width];
            for (var c = 0; c < width; c++) cells[c] = row[c].ToString();
            rows.Add(cells);
        }
        return rows;
    }

    /// <summary>Writes a header row and the rows, quoting only the cells that need it.</summary>
    public static byte[] Write(IReadOnlyList<string> columns, IEnumerable<string[]> rows)
    {
        using var ms = new MemoryStream();
        var any = false;
        using (var writer = Sep.Writer(o => o with { Sep = new Sep(','), Escape = true }).To(ms, leaveOpen: true))
        {
            foreach (var r in rows)
            {
                any = true;
                using var row = writer.NewRow();
                for (var i = 0; i < columns.Count; i++) row[columns[i]].Set(r[i]);
            }
        }
        // Sep writes the header with the first row; an empty table still gets its header.
        if (!any) ms.Write(Header(columns));
        return ms.ToArray();
    }

    /// <summary>The header row of <paramref name="columns"/>, ending in LF, as <see cref="Write"/> writes it.</summary>
    public static byte[] Header(IReadOnlyList<string> columns) => Encoding.UTF8.GetBytes(string.Join(',', columns.Select(Quote)) + "\n");

    /// <summary>
    /// The characters that make <see cref="Write"/> quote a cell (Sep's escaping: separator, quote, CR, LF). The engine
    /// writes released rows with the same rule in SQL (Apps' <c>CsvSql</c>); a test holds the two together.
    /// </summary>
    public static ReadOnlySpan<char> QuotedWhenHolding => [',', '"', '\n', '\r'];

    private static string Quote(string s) => s.AsSpan().IndexOfAny(QuotedWhenHolding) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;

    /// <summary>A read-only stream over <paramref name="csv"/> wherever it lives (an array, or the isolated area's decrypted dataset), without a copy.</summary>
    public static Stream ReadStream(ReadOnlyMemory<byte> csv) => new MemoryReadStream(csv);
}
