using System.Globalization;
using System.Text;
using TwinSeal.Protocol;

namespace TwinSeal.Bench;

/// <summary>Turns the measurements of one run into the printed tables, the ratio summary and the JSON document.</summary>
internal sealed class Report(
    BenchOptions options, Machine machine, CryptoResult crypto, (string Version, string Threads) duck,
    IReadOnlyList<BaselineResult> baselines, IReadOnlyList<EndToEndResult> runs, PsiResult? psi, TimeSpan elapsed)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The first computation of freshly started services, or with <paramref name="warm"/> one of services that computed once before (DemoOptions.WarmUp).</summary>
    private EndToEndResult? Run(int rows, ResultKind kind, bool warm = false) => runs.FirstOrDefault(r => r.Rows == rows && r.Kind == kind && r.Warm == warm);

    private BaselineResult? Baseline(string engine, int rows, ResultKind kind) =>
        baselines.FirstOrDefault(b => b.Engine == engine && b.Rows == rows && b.Kind == kind);

    /// <summary>The headline ratios, each with its goal.</summary>
    private IEnumerable<(string Name, double Value, string Goal, bool? Met)> Ratios()
    {
        yield return ("encrypt: DatasetStream / raw AesGcm (MB/s)", crypto.EncryptRatio, "≥ 0.8", crypto.EncryptRatio >= 0.8);
        yield return ("decrypt: DatasetStream / raw AesGcm (MB/s)", crypto.DecryptRatio, "≥ 0.8", crypto.DecryptRatio >= 0.8);
        yield return ("encrypt in memory (enclave's path) / raw AesGcm", crypto.MemoryEncryptRatio, "≥ 0.8", crypto.MemoryEncryptRatio >= 0.8);
        yield return ("decrypt in memory (enclave's path) / raw AesGcm", crypto.MemoryDecryptRatio, "≥ 0.8", crypto.MemoryDecryptRatio >= 0.8);
        yield return ("encrypt: DatasetStream into a buffer writer / raw AesGcm", crypto.WriterEncryptRatio, "≥ 0.8", crypto.WriterEncryptRatio >= 0.8);
        yield return ("decrypt: DatasetStream into a buffer writer (enclave's path) / raw", crypto.WriterDecryptRatio, "≥ 0.8", crypto.WriterDecryptRatio >= 0.8);
        foreach (var kind in new[] { ResultKind.MatchCount, ResultKind.JoinedRows })
        {
            var t = Run(options.Rows, kind);
            var d = Baseline("DuckDB", options.Rows, kind);
            var p = Baseline("plain C#", options.Rows, kind);
            if (t is null || d is null || p is null) continue;
            var r = t.MatchMilliseconds / d.BestMilliseconds;
            yield return ($"{Short(options.Rows)} {kind}: TwinSeal match flow / DuckDB (time)", r, "≤ 2", r <= 2);
            yield return ($"{Short(options.Rows)} {kind}: TwinSeal incl. set-up / DuckDB (time)", (t.MatchMilliseconds + t.SetupMilliseconds) / d.BestMilliseconds, "", null);
            yield return ($"{Short(options.Rows)} {kind}: TwinSeal match flow / plain C# (time)", t.MatchMilliseconds / p.BestMilliseconds, "", null);
            if (Run(options.Rows, kind, warm: true) is { } warm)
            {
                var rw = warm.MatchMilliseconds / d.BestMilliseconds;
                yield return ($"{Short(options.Rows)} {kind}, warm services: TwinSeal match flow / DuckDB (time)", rw, "≤ 2", rw <= 2);
            }
        }
        // Each step of the series on its own: a ratio against the smallest size would let the fixed costs that
        // dominate small runs hide a superlinear step further up.
        var sizes = options.ScalingRows;
        for (var i = 1; i < sizes.Count; i++)
        {
            foreach (var kind in new[] { ResultKind.MatchCount, ResultKind.JoinedRows })
            {
                var small = Run(sizes[i - 1], kind);
                var large = Run(sizes[i], kind);
                if (small is null || large is null) continue;
                var perRow = large.MatchMilliseconds / large.Rows / (small.MatchMilliseconds / small.Rows);
                yield return ($"{kind}: time per row at {Short(sizes[i])} / at {Short(sizes[i - 1])}", perRow, "≤ 1.25 (linear)", perRow <= 1.25);
            }
        }
        foreach (var rows in new[] { options.Rows, 10_000_000 }.Distinct())
        {
            var peak = runs.Where(r => r.Rows == rows).SelectMany(PartyPeaks).DefaultIfEmpty().Max(x => x.Bytes);
            if (peak == 0) continue;
            var gib = peak / (double)(1L << 30);
            yield return ($"{Short(rows)}: peak memory of one party (host + enclave), GiB", gib, rows == 10_000_000 ? "≤ 3 GiB at 10M" : "", rows == 10_000_000 ? gib <= 3 : null);
        }
        if (psi is { Ran: true } && Run(psi.Elements, ResultKind.MatchCount) is { } pr)
        {
            yield return ($"{Short(psi.Elements)} intersection size: TwinSeal match flow / psi.js (time)", pr.MatchMilliseconds / psi.TotalMilliseconds, "", null);
            yield return ($"{Short(psi.Elements)} intersection size: TwinSeal incl. set-up / psi.js (time)", (pr.MatchMilliseconds + pr.SetupMilliseconds) / psi.TotalMilliseconds, "", null);
            yield return ($"{Short(psi.Elements)} intersection size: psi.js / TwinSeal match flow (speed-up)", psi.TotalMilliseconds / pr.MatchMilliseconds, "", null);
        }
    }

    /// <summary>Host + enclave peak of each party in one run (an upper bound: the two peaks need not coincide).</summary>
    private static IEnumerable<(string Party, long Bytes)> PartyPeaks(EndToEndResult r) =>
        new[] { "party1", "party2" }.Select(p => (p, r.Peaks.Where(x => x.Role == p + " host" || x.Role == p + " enclave").Sum(x => x.PeakBytes)));

    public void WriteTable(TextWriter w)
    {
        w.WriteLine();
        w.WriteLine($"TwinSeal bench, mode {options.Mode}: {machine.Cores} cores ({machine.Cpu}), {machine.MemoryGiB:N0} GiB, {machine.Runtime}, {machine.Os}");
        w.WriteLine($"load average at start {machine.LoadAverage}, at end {machine.LoadAverageAtEnd}; bench took {elapsed.TotalMinutes:N1} min");
        w.WriteLine($"data: DataGenerator (party1.csv customer_id,email,spend_eur; party2.csv email,segment,visits), {options.Overlap:P0} overlap, seed {options.Seed}; the demo regenerated byte-identical copies: {(runs.All(r => r.SameData) ? "yes" : "NO")}");

        WriteCrypto(w, crypto);

        w.WriteLine();
        var main = options.Rows;
        var expected = runs.FirstOrDefault(r => r.Rows == main)?.Expected ?? -1;
        w.WriteLine($"2. Secure matching, {main:N0} × {main:N0} rows, inner join on email ({expected:N0} matches). Seconds; baselines best of {options.BaselineRepetitions} after a warm-up, TwinSeal fastest of {(main >= 5_000_000 ? 1 : options.EndToEndRepetitions)} run(s).");
        w.WriteLine($"   TwinSeal match flow = S10–S12 load both tables into the isolated areas + S13–S36 party 1 attest, key release, encrypt, send over loopback TLS,");
        w.WriteLine($"   and party 2, as the dataset arrives, attest, key release, decrypt + verify, join, release (and write the rows). Set-up = start KMS/hosts/enclaves + key creation + authority.");
        w.WriteLine($"   DuckDB {duck.Version}, in-process, {duck.Threads} threads, read_csv of both files. Plain C# = the enclave's TableCsv (Sep) + SecureMatchApp + TableCsv.Write, in-process, no crypto.");
        w.WriteLine("   Fresh services: the first computation after KMS, hosts and isolated areas started. Warm services: the same after one computation of");
        w.WriteLine("   1,000 rows through them on a key of its own (demo --warm-up), as a party's long-running services are; DuckDB is timed after a warm-up run too.");
        var rows2 = new List<string[]>();
        foreach (var (kind, t) in new[] { ResultKind.MatchCount, ResultKind.JoinedRows }.SelectMany(k => new[] { (k, Run(main, k)), (k, Run(main, k, warm: true)) }))
        {
            var d = Baseline("DuckDB", main, kind);
            var p = Baseline("plain C#", main, kind);
            if (t is null || d is null || p is null) continue;
            rows2.Add([kind + (t.Warm ? ", warm services" : ""), S(t.MatchMilliseconds), S(t.SetupMilliseconds), S(t.WallMilliseconds), S(d.BestMilliseconds), S(p.BestMilliseconds),
                F2(t.MatchMilliseconds / d.BestMilliseconds), Goal(t.MatchMilliseconds / d.BestMilliseconds <= 2, "≤ 2"), F2(t.MatchMilliseconds / p.BestMilliseconds),
                t.Success && t.Matched == d.Matches && p.Matches == d.Matches ? "yes" : $"NO ({t.Matched}/{d.Matches}/{p.Matches}{(t.Success ? "" : "; " + t.Failure)})"]);
        }
        Table(w, ["result", "TwinSeal match", "set-up", "whole demo", "DuckDB", "plain C#", "TwinSeal/DuckDB", "goal", "TwinSeal/plain", "counts agree"], rows2);
        w.WriteLine("   TwinSeal match flow of every run (s): " + string.Join("; ", runs.Where(r => r.Rows == main)
            .Select(r => $"{r.Kind}{(r.Warm ? " warm" : "")} " + string.Join(", ", r.MatchMillisecondsOfRuns.Select(S)))));
        w.WriteLine("   DuckDB of every timed repetition (s): " + string.Join("; ", baselines.Where(b => b.Engine == "DuckDB" && b.Rows == main)
            .Select(b => $"{b.Kind} " + string.Join(", ", b.Milliseconds.Select(S)))));

        w.WriteLine();
        w.WriteLine($"   Where TwinSeal's time goes at {main:N0} rows (ms; DemoSummary.StageMilliseconds; * = part of the match flow; indented = inside the stage above):");
        var columns = new[] { ResultKind.MatchCount, ResultKind.JoinedRows }
            .SelectMany(k => new[] { Run(main, k), Run(main, k, warm: true) }).OfType<EndToEndResult>().ToList();
        var keys = new List<string>();
        foreach (var r in columns)
            foreach (var k in r.Stages.Keys)
                if (!keys.Contains(k)) keys.Add(k);
        // Show each party's own timings under the stage they belong to.
        var ordered = new List<string>();
        foreach (var k in keys.Where(k => !k.StartsWith("party", StringComparison.Ordinal)))
        {
            ordered.Add(k);
            // Party 2's timings belong to S13–S36 when it computed as the dataset arrived, else to its own S26–S36.
            string[] subs = k.StartsWith("S13", StringComparison.Ordinal) ? keys.Exists(x => x.StartsWith("S26", StringComparison.Ordinal)) ? ["party1."] : ["party1.", "party2."]
                : k.StartsWith("S26", StringComparison.Ordinal) ? ["party2."] : [];
            foreach (var sub in subs) ordered.AddRange(keys.Where(x => x.StartsWith(sub, StringComparison.Ordinal)));
        }
        ordered.AddRange(keys.Where(k => !ordered.Contains(k)));
        Table(w, ["stage", .. columns.Select(c => c.Kind + (c.Warm ? " warm" : ""))], ordered.Select(k =>
        {
            var inner = k.StartsWith("party", StringComparison.Ordinal);
            var star = k.StartsWith("S10", StringComparison.Ordinal) || k.StartsWith("S13", StringComparison.Ordinal) || k.StartsWith("S26", StringComparison.Ordinal) ? " *" : "";
            return new[] { (inner ? "    " : "") + k + star }.Concat(columns.Select(c => Ms(c.Stages.GetValueOrDefault(k)))).ToArray();
        }).ToList());
        var pc = Baseline("plain C#", main, ResultKind.MatchCount);
        var pj = Baseline("plain C#", main, ResultKind.JoinedRows);
        if (pc is not null && pj is not null)
        {
            w.WriteLine("   Plain C# join, best repetition (ms):");
            var parts = pc.BestParts.Keys.Union(pj.BestParts.Keys).ToList();
            Table(w, ["part", "MatchCount", "JoinedRows"], parts.Select(k => new[] { k, Ms(pc.BestParts.GetValueOrDefault(k)), Ms(pj.BestParts.GetValueOrDefault(k)) }).ToList());
        }

        w.WriteLine();
        w.WriteLine("3. Peak memory (VmHWM = peak resident set / working set, MiB) of each process of the demo, polled from /proc every 100 ms");
        var memRuns = runs.Where(r => options.ScalingRows.Contains(r.Rows) && !r.Warm).ToList();
        var roles = memRuns.SelectMany(r => r.Peaks.Select(p => p.Role)).Distinct().ToList();
        var memRows = roles.Select(role => new[] { role }.Concat(memRuns.Select(r => MiB(r.Peaks.Where(p => p.Role == role).Sum(p => p.PeakBytes)))).ToArray()).ToList();
        foreach (var party in new[] { "party1", "party2" })
            memRows.Add(new[] { party + " host + enclave" }.Concat(memRuns.Select(r => MiB(PartyPeaks(r).Single(x => x.Party == party).Bytes)))
                .ToArray());
        Table(w, new[] { "process" }.Concat(memRuns.Select(r => $"{Short(r.Rows)} {(r.Kind == ResultKind.MatchCount ? "count" : "rows")}")).ToArray(), memRows);
        w.WriteLine("   (goal ≤ 3 GiB per party at 10M rows; 10M runs only with --rows 10000000 or --full)");

        w.WriteLine();
        w.WriteLine("4. Scaling: TwinSeal match flow time per size; µs per row; per-row time relative to the previous size (1.00 = linear, < 1 = fixed costs amortised)");
        var sizes = options.ScalingRows;
        var scaleRows = new List<string[]>();
        foreach (var n in sizes)
        {
            var row = new List<string> { n.ToString("N0", Inv) };
            foreach (var kind in new[] { ResultKind.MatchCount, ResultKind.JoinedRows })
            {
                var r = Run(n, kind);
                var previous = n == sizes[0] ? null : Run(sizes[sizes.ToList().IndexOf(n) - 1], kind);
                row.Add(r is null ? "-" : S(r.MatchMilliseconds));
                row.Add(r is null ? "-" : (r.MatchMilliseconds * 1000 / n).ToString("F2", Inv));
                row.Add(r is null || previous is null ? "-" : F2(r.MatchMilliseconds / n / (previous.MatchMilliseconds / previous.Rows)));
            }
            var dc = Baseline("DuckDB", n, ResultKind.MatchCount);
            var pcn = Baseline("plain C#", n, ResultKind.MatchCount);
            row.Add(dc is null ? "-" : S(dc.BestMilliseconds));
            row.Add(pcn is null ? "-" : S(pcn.BestMilliseconds));
            var rc = Run(n, ResultKind.MatchCount);
            row.Add(rc is null || dc is null ? "-" : F2(rc.MatchMilliseconds / dc.BestMilliseconds));
            scaleRows.Add([.. row]);
        }
        Table(w, ["rows", "count s", "µs/row", "vs prev.", "rows s", "µs/row", "vs prev.", "DuckDB count s", "plain count s", "TwinSeal/DuckDB count"], scaleRows);

        w.WriteLine();
        if (psi is null)
        {
            w.WriteLine("5. psi.js: skipped (--no-psi or --psi-rows 0)");
        }
        else if (!psi.Ran)
        {
            w.WriteLine($"5. psi.js (@openmined/psi.js, ECDH-PSI under Node) on {psi.Elements:N0} × {psi.Elements:N0}: did not run: {psi.WhyNot}");
        }
        else
        {
            var t = Run(psi.Elements, ResultKind.MatchCount);
            w.WriteLine($"5. Intersection size, {psi.Elements:N0} × {psi.Elements:N0} e-mail addresses: OpenMined ECDH-PSI, @openmined/psi.js {psi.Version} (WebAssembly, one thread) under Node {psi.Node}, GCS, fpr 1e-6,");
            w.WriteLine("   semi-honest, server = party 1, client = party 2, messages serialised and parsed as on the wire; vs TwinSeal MatchCount on the same CSVs");
            Table(w, ["", "seconds", "result", "peak RSS MiB"],
            [
                ["psi.js (read CSV + setup + request + response + intersection)", S(psi.TotalMilliseconds), psi.IntersectionSize.ToString("N0", Inv), MiB(psi.PeakRssBytes)],
                ["TwinSeal match flow", t is null ? "-" : S(t.MatchMilliseconds), t is null ? "-" : t.Matched.ToString("N0", Inv), t is null ? "-" : MiB(PartyPeaks(t).Max(x => x.Bytes)) + " (largest party)"],
                ["TwinSeal incl. set-up", t is null ? "-" : S(t.MatchMilliseconds + t.SetupMilliseconds), "", ""],
            ]);
            w.WriteLine("   psi.js steps (ms): " + string.Join(", ", psi.Steps.Select(s => $"{s.Key} {s.Value:N0}")));
        }

        w.WriteLine();
        w.WriteLine("Ratios");
        Table(w, ["ratio", "value", "goal", "met"], Ratios().Select(r => new[] { r.Name, F2(r.Value), r.Goal, r.Met switch { true => "yes", false => "NO", null => "" } }).ToList());
        var failed = runs.Where(r => !r.Success).ToList();
        foreach (var f in failed) w.WriteLine($"FAILED: TwinSeal {f.Rows:N0} {f.Kind}: {f.Failure}");
    }

    /// <summary>Section 1 alone, as <c>--crypto-only</c> prints it.</summary>
    public static void WriteCrypto(TextWriter w, Machine machine, CryptoResult crypto)
    {
        w.WriteLine();
        w.WriteLine($"TwinSeal bench, crypto only: {machine.Cores} cores ({machine.Cpu}), {machine.Runtime}; load average at start {machine.LoadAverage}, at end {machine.LoadAverageAtEnd}");
        WriteCrypto(w, crypto);
    }

    private static void WriteCrypto(TextWriter w, CryptoResult crypto)
    {
        w.WriteLine();
        w.WriteLine($"1. Dataset encryption throughput: {crypto.Bytes >> 20} MiB of random plaintext in {crypto.SegmentSize >> 20} MiB segments/chunks, one thread, best of {crypto.Repetitions} after warm-up (median in brackets)");
        Table(w, ["operation", "DatasetStream MB/s", "raw AesGcm MB/s", "ratio", "goal"],
        [
            ["encrypt", Mbps(crypto.StreamEncrypt), Mbps(crypto.RawEncrypt), F2(crypto.EncryptRatio), Goal(crypto.EncryptRatio >= 0.8, "≥ 0.8")],
            ["decrypt", Mbps(crypto.StreamDecrypt), Mbps(crypto.RawDecrypt), F2(crypto.DecryptRatio), Goal(crypto.DecryptRatio >= 0.8, "≥ 0.8")],
            ["encrypt (in memory)", Mbps(crypto.MemoryEncrypt), Mbps(crypto.RawEncrypt), F2(crypto.MemoryEncryptRatio), Goal(crypto.MemoryEncryptRatio >= 0.8, "≥ 0.8")],
            ["decrypt (in memory)", Mbps(crypto.MemoryDecrypt), Mbps(crypto.RawDecrypt), F2(crypto.MemoryDecryptRatio), Goal(crypto.MemoryDecryptRatio >= 0.8, "≥ 0.8")],
            ["encrypt (buffer writer)", Mbps(crypto.WriterEncrypt), Mbps(crypto.RawEncrypt), F2(crypto.WriterEncryptRatio), Goal(crypto.WriterEncryptRatio >= 0.8, "≥ 0.8")],
            ["decrypt (buffer writer)", Mbps(crypto.WriterDecrypt), Mbps(crypto.RawDecrypt), F2(crypto.WriterDecryptRatio), Goal(crypto.WriterDecryptRatio >= 0.8, "≥ 0.8")],
        ]);
        // If DatasetStream cost were just AesGcm plus one pass of stream plumbing, its time would be the sum of the two.
        var predicted = 1 / (1 / crypto.RawEncrypt.BestMBps + 1 / crypto.CopyOnly.BestMBps);
        w.WriteLine($"   stream plumbing alone (read 1 MiB from a stream + write it out, no crypto): {Mbps(crypto.CopyOnly)} MB/s;"
            + $" raw AesGcm + that plumbing would give {predicted:N0} MB/s for encrypt ({predicted / crypto.RawEncrypt.BestMBps:F2} of raw)");

    }

    public object ToJson() => new
    {
        machine,
        options = new { options.Mode, options.Rows, options.ScalingRows, options.Overlap, options.Seed, options.CryptoMiB, options.CryptoRepetitions, options.BaselineRepetitions, options.EndToEndRepetitions, options.PsiRows },
        elapsedSeconds = elapsed.TotalSeconds,
        crypto = new
        {
            crypto.SegmentSize,
            crypto.Bytes,
            crypto.Repetitions,
            encrypt = new { streamMBps = crypto.StreamEncrypt.BestMBps, rawMBps = crypto.RawEncrypt.BestMBps, ratio = crypto.EncryptRatio, streamSeconds = crypto.StreamEncrypt.Seconds, rawSeconds = crypto.RawEncrypt.Seconds },
            decrypt = new { streamMBps = crypto.StreamDecrypt.BestMBps, rawMBps = crypto.RawDecrypt.BestMBps, ratio = crypto.DecryptRatio, streamSeconds = crypto.StreamDecrypt.Seconds, rawSeconds = crypto.RawDecrypt.Seconds },
            copyOnly = new { mbps = crypto.CopyOnly.BestMBps, seconds = crypto.CopyOnly.Seconds },
            bufferWriter = new { encryptMBps = crypto.WriterEncrypt.BestMBps, encryptRatio = crypto.WriterEncryptRatio, decryptMBps = crypto.WriterDecrypt.BestMBps, decryptRatio = crypto.WriterDecryptRatio },
        },
        duckDb = new { version = duck.Version, threads = duck.Threads },
        baselines = baselines.Select(b => new { b.Engine, b.Rows, b.Kind, b.Matches, bestMilliseconds = b.BestMilliseconds, b.Milliseconds, b.BestParts }),
        twinSeal = runs.Select(r => new
        {
            r.Rows,
            r.Kind,
            r.Warm,
            r.Success,
            r.Failure,
            r.Matched,
            r.Expected,
            r.SameData,
            matchMilliseconds = r.MatchMilliseconds,
            matchMillisecondsOfRuns = r.MatchMillisecondsOfRuns,
            setupMilliseconds = r.SetupMilliseconds,
            wallMilliseconds = r.WallMilliseconds,
            stages = r.Stages,
            peakBytes = r.Peaks.Select(p => new { p.Role, p.Pid, p.PeakBytes }),
        }),
        psiJs = psi,
        ratios = Ratios().Select(r => new { name = r.Name, value = r.Value, goal = r.Goal, met = r.Met }),
    };

    private static void Table(TextWriter w, string[] header, IReadOnlyList<string[]> rows)
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Select(r => i < r.Length ? r[i].Length : 0).DefaultIfEmpty().Max())).ToArray();
        string Line(string[] cells) => "   " + string.Join("  ", cells.Select((c, i) => i == 0 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd();
        w.WriteLine(Line(header));
        w.WriteLine("   " + string.Join("  ", widths.Select(x => new string('-', x))));
        foreach (var r in rows) w.WriteLine(Line(r));
    }

    private static string Short(int n) => n switch
    {
        >= 1_000_000 when n % 1_000_000 == 0 => $"{n / 1_000_000}M",
        >= 1000 when n % 1000 == 0 => $"{n / 1000}k",
        _ => n.ToString("N0", Inv),
    };

    private static string Mbps(Throughput t) => $"{t.BestMBps.ToString("N0", Inv)} ({t.MedianMBps.ToString("N0", Inv)})";
    private static string F2(double x) => !double.IsFinite(x) ? "-" : x is > 0 and < 0.1 ? x.ToString("G2", Inv) : x.ToString("F2", Inv);
    private static string S(double ms) => (ms / 1000).ToString("F2", Inv);
    private static string Ms(double? ms) => ms is null or 0 ? "-" : ms.Value.ToString("N0", Inv);
    private static string MiB(long bytes) => bytes == 0 ? "-" : (bytes / (double)(1 << 20)).ToString("N0", Inv);
    private static string Goal(bool met, string goal) => $"{goal} {(met ? "met" : "NOT met")}";

    public override string ToString()
    {
        var sb = new StringBuilder();
        using var w = new StringWriter(sb, Inv);
        WriteTable(w);
        return sb.ToString();
    }
}
