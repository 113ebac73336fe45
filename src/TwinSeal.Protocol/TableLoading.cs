namespace TwinSeal.Protocol;

// What a participant says about a table it loads into its isolated area (S10–S12), and what comes back.
// The command itself is LoadTable (EnclaveChannel.cs); the reply is LoadTableResult (Messages.cs).

/// <summary>A file format a table is loaded from or a released table is written as.</summary>
public enum TableFormat
{
    /// <summary>RFC 4180 CSV, UTF-8, header row required.</summary>
    Csv,
    /// <summary>Apache Parquet with flat (non-nested) columns.</summary>
    Parquet,
}

/// <summary>
/// One expected column of a table being loaded. The expected schema is a list of these, in column order; the file's
/// own schema (CSV header; Parquet schema) must have exactly these names in this order, and a mismatch names the
/// first differing column. A load command may carry it (checked when the file is loaded), and the key's policy may
/// carry one per party (<see cref="UsageGrant.Schema"/>, checked by both isolated areas before they encrypt or compute).
/// </summary>
/// <param name="Name">Column name, compared ordinally.</param>
/// <param name="Type">
/// Null accepts any cell. Otherwise one of <see cref="ColumnTypes"/>: a Parquet column must have exactly that type;
/// a CSV cell (CSV has no types) must parse as it, or its row is a bad row.
/// </param>
/// <param name="Required">An empty cell (a Parquet null or empty string) in this column makes its row a bad row.</param>
public sealed record ColumnSpec(string Name, string? Type = null, bool Required = false);

/// <summary>Where a bad row of a loaded file is, and why it is bad. Never carries a cell value.</summary>
/// <param name="Reason">What is wrong, e.g. <c>not an int</c> or <c>empty, but the column is required</c>.</param>
/// <param name="Line">CSV: the physical line (from 1, the header being line 1) where the row starts.</param>
/// <param name="RowGroup">Parquet: the row group, counted from 0.</param>
/// <param name="Row">Parquet: the row within its row group, counted from 0.</param>
/// <param name="Column">The offending column, when one column is at fault.</param>
public sealed record BadRow(string Reason, long? Line = null, int? RowGroup = null, long? Row = null, string? Column = null);

/// <summary>
/// The column types an expected schema may name. A Parquet column's type is derived from its physical and logical
/// type as listed; a CSV cell is checked against the text form given, which is also how Parquet values are turned into
/// the isolated area's text cells (invariant culture).
/// </summary>
public static class ColumnTypes
{
    /// <summary>Any text. Parquet: UTF-8 strings (BYTE_ARRAY with the STRING logical type).</summary>
    public const string String = "string";
    /// <summary>A signed or unsigned integer, e.g. <c>-42</c>. Parquet: INT32, INT64 and their INT(8/16/32/64, signed or not) logical types. CSV: fits in 64 bits signed.</summary>
    public const string Int = "int";
    /// <summary>An exact decimal, e.g. <c>-1.50</c> (no exponent, no thousands separator). Parquet: the DECIMAL logical type.</summary>
    public const string Decimal = "decimal";
    /// <summary>A binary floating point number, e.g. <c>0.1</c>, <c>1E+300</c>, <c>NaN</c>, <c>-Infinity</c>. Parquet: FLOAT and DOUBLE.</summary>
    public const string Double = "double";
    /// <summary><c>true</c> or <c>false</c> (any case in CSV, lower case from Parquet). Parquet: BOOLEAN.</summary>
    public const string Bool = "bool";
    /// <summary>A calendar date, <c>yyyy-MM-dd</c>. Parquet: the DATE logical type.</summary>
    public const string Date = "date";
    /// <summary>An ISO 8601 date and time, <c>yyyy-MM-ddTHH:mm:ss[.fffffff][Z|±hh:mm]</c>. Parquet: TIMESTAMP (millis, micros), legacy INT96.</summary>
    public const string Timestamp = "timestamp";
    /// <summary>A time of day, <c>HH:mm:ss[.fffffff]</c>. Parquet: the TIME logical type.</summary>
    public const string Time = "time";
    /// <summary>A UUID, <c>xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx</c>. Parquet: the UUID logical type.</summary>
    public const string Uuid = "uuid";
    /// <summary>Bytes, as standard base64. Parquet: BYTE_ARRAY without a logical type.</summary>
    public const string Binary = "binary";

    /// <summary>Every type name, in the order above.</summary>
    public static IReadOnlyList<string> All { get; } = [String, Int, Decimal, Double, Bool, Date, Timestamp, Time, Uuid, Binary];
}
