using TwinSeal.Protocol;

namespace TwinSeal.Enclave;

/// <summary>
/// How a released table reaches the participant's file. The isolated area always releases CSV (the reply body of
/// <see cref="ComputeOnDataset"/>); the party host writes it as CSV, or converts it to Parquet when the output file
/// ends in <c>.parquet</c>. Only released rows are ever converted: they have already left the isolated area under the
/// output policy, so the conversion on the host releases nothing more.
/// </summary>
public static class TableOutput
{
    /// <summary>Parquet for a path ending in <c>.parquet</c> (any case); CSV for <c>.csv</c> and any other name.</summary>
    public static TableFormat FormatFor(string path)
        => Path.GetExtension(path).Equals(".parquet", StringComparison.OrdinalIgnoreCase) ? TableFormat.Parquet : TableFormat.Csv;

    /// <summary>The bytes to write to <paramref name="path"/> for the released CSV <paramref name="releasedCsv"/>: the CSV itself, or its Parquet encoding (<see cref="TableParquet.WriteAsync"/>).</summary>
    public static async Task<byte[]> EncodeAsync(string path, byte[] releasedCsv, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(releasedCsv);
        return FormatFor(path) switch
        {
            TableFormat.Parquet => await TableParquet.WriteAsync(TableCsv.Parse(releasedCsv, "released table"), ct).ConfigureAwait(false),
            _ => releasedCsv,
        };
    }
}
