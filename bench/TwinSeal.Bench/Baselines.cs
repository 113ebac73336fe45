using System.Diagnostics;
using DuckDB.NET.Data;
using TwinSeal.Apps;
using TwinSeal.Enclave;
using TwinSeal.Protocol;
using TwinSeal.Protocol.Apps;

namespace TwinSeal.Bench;

/// <summary>One baseline timing: the best repetition's wall time and its parts.</summary>
internal sealed record BaselineResult(string Engine, int Rows, ResultKind Kind, long Matches, IReadOnlyList<double> Milliseconds, IReadOnlyDictionary<string, double> BestParts)
{
    public double BestMilliseconds => Milliseconds.Min();
}

/// <summary>
/// The same inner join (party 2's subscribers ⋈ party 1's customers on email) on the same plaintext CSVs, without
/// any crypto, attestation, processes or network: DuckDB in-process, and the enclave's own code called directly.
/// </summary>
internal static class Baselines
{
    /// <summary>DuckDB (in-process, in-memory database, all cores) reading both CSVs with read_csv.</summary>
    public static BaselineResult DuckDb(string party1Csv, string party2Csv, ResultKind kind, string outputPath, int repetitions, int rows)
    {
        var p1 = Sql(party1Csv);
        var p2 = Sql(party2Csv);
        // Output columns as the enclave writes them: party 2's own columns, then party 1's without the key.
        var join = $"SELECT b.email, b.segment, b.visits, a.customer_id, a.spend_eur FROM read_csv({p2}, header = true) b JOIN read_csv({p1}, header = true) a ON a.email = b.email";
        var times = new List<double>();
        long matches = -1;
        for (var r = 0; r < repetitions + 1; r++)
        {
            if (File.Exists(outputPath)) File.Delete(outputPath);
            var sw = Stopwatch.StartNew();
            using (var connection = new DuckDBConnection("DataSource=:memory:"))
            {
                connection.Open();
                using var command = connection.CreateCommand();
                if (kind == ResultKind.MatchCount)
                {
                    command.CommandText = $"SELECT COUNT(*) FROM ({join})";
                    matches = Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
                }
                else
                {
                    command.CommandText = $"COPY ({join}) TO {Sql(outputPath)} (HEADER, DELIMITER ',')";
                    command.ExecuteNonQuery();
                }
            }
            // The first run is a warm-up (native library load, page cache); the rest are timed.
            if (r > 0) times.Add(sw.Elapsed.TotalMilliseconds);
            // Check the written rows outside the timing: data lines of the output, less the header.
            if (kind == ResultKind.JoinedRows) matches = File.ReadLines(outputPath).LongCount(l => l.Length > 0) - 1;
        }
        return new BaselineResult("DuckDB", rows, kind, matches, times, new Dictionary<string, double>());
    }

    /// <summary>DuckDB's thread count here (it uses every core by default).</summary>
    public static (string Version, string Threads) DuckDbSettings()
    {
        using var connection = new DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT version(), current_setting('threads')";
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetValue(0)?.ToString() ?? "?", reader.GetValue(1)?.ToString() ?? "?");
    }

    /// <summary>
    /// The enclave's own code, minus everything that makes it secure: parse both CSVs with <see cref="TableCsv"/>
    /// (Sep, as the isolated area does), join with <see cref="SecureMatchApp"/>, write the rows with
    /// <see cref="TableCsv.Write"/>. Single-threaded, like the enclave.
    /// </summary>
    public static BaselineResult PlainCSharp(string party1Csv, string party2Csv, ResultKind kind, string outputPath, int repetitions, int rows)
    {
        var app = new SecureMatchApp();
        var policy = new OutputPolicy("secure-match", "email", kind, "party2");
        var times = new List<double>();
        Dictionary<string, double>? bestParts = null;
        long matches = -1;
        for (var r = 0; r < repetitions + 1; r++)
        {
            var parts = new Dictionary<string, double>(StringComparer.Ordinal);
            var total = Stopwatch.StartNew();
            var sw = Stopwatch.StartNew();
            var customers = TableCsv.Parse(File.ReadAllBytes(party1Csv), "party1.csv");
            var subscribers = TableCsv.Parse(File.ReadAllBytes(party2Csv), "party2.csv");
            parts["read + parse"] = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            var output = app.Run(new AppInput(subscribers, customers, policy, "party2", "party1"));
            parts["join"] = sw.Elapsed.TotalMilliseconds;
            matches = output.DistinctMatchedKeys ?? output.Rows?.Rows.Count ?? -1;
            if (output.Rows is not null)
            {
                sw.Restart();
                File.WriteAllBytes(outputPath, TableCsv.Write(output.Rows));
                parts["write"] = sw.Elapsed.TotalMilliseconds;
            }
            var elapsed = total.Elapsed.TotalMilliseconds;
            if (r > 0)
            {
                if (times.Count == 0 || elapsed < times.Min()) bestParts = parts;
                times.Add(elapsed);
            }
            // Leave the heap as the next measurement would find it on a fresh start.
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        return new BaselineResult("plain C#", rows, kind, matches, times, bestParts!);
    }

    private static string Sql(string path) => "'" + path.Replace("'", "''", StringComparison.Ordinal) + "'";
}
