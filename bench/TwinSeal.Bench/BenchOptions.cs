using System.Globalization;

namespace TwinSeal.Bench;

/// <summary>Command-line settings of one bench run.</summary>
internal sealed record BenchOptions
{
    /// <summary>Rows per party of the main end-to-end comparison (and of the memory measurement).</summary>
    public int Rows { get; init; } = 1_000_000;

    /// <summary>Sizes of the scaling series, ascending; always ends with <see cref="Rows"/>.</summary>
    public IReadOnlyList<int> ScalingRows { get; init; } = [100_000, 1_000_000];

    /// <summary>Share of party 2's keys that party 1 also has.</summary>
    public double Overlap { get; init; } = 0.5;

    /// <summary>Data generator seed (DemoRunner's default).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Total plaintext bytes per crypto throughput repetition.</summary>
    public int CryptoMiB { get; init; } = 256;

    /// <summary>Timed repetitions of each crypto measurement (after one warm-up).</summary>
    public int CryptoRepetitions { get; init; } = 5;

    /// <summary>Timed repetitions of each in-process baseline (DuckDB, plain C# join).</summary>
    public int BaselineRepetitions { get; init; } = 3;

    /// <summary>End-to-end runs per size and result kind below 5M rows (one above); the one with the fastest match flow counts.</summary>
    public int EndToEndRepetitions { get; init; } = 2;

    /// <summary>
    /// Also time the main size on warm services: each run first computes once on 1,000 rows through the same services
    /// (DemoOptions.WarmUp), as a party's long-running services have, and as DuckDB's baseline is timed after a warm-up run.
    /// </summary>
    public bool Warm { get; init; } = true;

    /// <summary>Elements per side for psi.js; 0 skips it.</summary>
    public int PsiRows { get; init; } = 100_000;

    /// <summary>Give up on psi.js after this long.</summary>
    public TimeSpan PsiTimeout { get; init; } = TimeSpan.FromMinutes(8);

    /// <summary>Only section 1 (dataset encryption throughput): no data, no DuckDB, no TwinSeal processes, no psi.js.</summary>
    public bool CryptoOnly { get; init; }

    /// <summary>Print one JSON document on stdout (the table then goes to stderr).</summary>
    public bool Json { get; init; }

    /// <summary>Keep the scratch folder (generated CSVs, demo work dirs, outputs).</summary>
    public bool Keep { get; init; }

    /// <summary>Where scratch data goes.</summary>
    public string WorkRoot { get; init; } = Path.Combine(Path.GetTempPath(), "twinseal-bench-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Which preset was asked for, for the report.</summary>
    public string Mode { get; init; } = "default";

    public const string Usage = """
        usage: dotnet run -c Release --project bench/TwinSeal.Bench -- [options]
          --rows N          rows per party for the main comparison and memory (default 1000000)
          --quick           a smoke run: 100000 rows, scaling 10k→100k, 64 MiB crypto, psi.js on 10000
          --full            add 10,000,000 rows to the scaling series (long; also measures memory at 10M)
          --overlap F       share of party 2's keys that party 1 has (default 0.5)
          --seed N          generator seed (default 42)
          --crypto-mib N    plaintext MiB per crypto repetition (default 256)
          --crypto-only     only measure dataset encryption throughput (section 1); needs no CLI build or data
          --e2e-reps N      TwinSeal end-to-end runs per size and result kind, fastest counts (default 2; 1 at 5M+ rows)
          --no-warm         skip the main size's runs on warm services (each run first computes once on 1,000 rows)
          --psi-rows N      elements per side for psi.js (default 100000; 0 skips it)
          --no-psi          skip psi.js
          --json            print one JSON document on stdout (the table goes to stderr)
          --keep            keep the scratch folder
          --work DIR        scratch folder (default: a new folder under the temp directory)
        """;

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
        int? rows = null;
        int? psiRows = null;
        int? cryptoMiB = null;
        int? e2eReps = null;
        var quick = false;
        var full = false;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            int NextInt() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : throw new ArgumentException($"{args[i - 1]} needs a non-negative integer.");
            switch (args[i])
            {
                case "--rows": rows = NextInt(); break;
                case "--quick": quick = true; break;
                case "--full": full = true; break;
                case "--overlap":
                    o = o with { Overlap = double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && f is >= 0 and <= 1 ? f : throw new ArgumentException("--overlap needs a number from 0 to 1.") };
                    break;
                case "--seed": o = o with { Seed = NextInt() }; break;
                case "--crypto-mib": cryptoMiB = NextInt(); break;
                case "--crypto-only": o = o with { CryptoOnly = true }; break;
                case "--psi-rows": psiRows = NextInt(); break;
                case "--e2e-reps": e2eReps = Math.Max(1, NextInt()); break;
                case "--no-psi": psiRows = 0; break;
                case "--no-warm": o = o with { Warm = false }; break;
                case "--json": o = o with { Json = true }; break;
                case "--keep": o = o with { Keep = true }; break;
                case "--work": o = o with { WorkRoot = Path.GetFullPath(Next()) }; break;
                case "-h" or "--help": throw new HelpRequestedException();
                default: throw new ArgumentException($"Unknown option '{args[i]}'.");
            }
        }

        var mainRows = rows ?? (quick ? 100_000 : 1_000_000);
        if (mainRows < 1000) throw new ArgumentException("--rows must be at least 1000.");
        // The scaling series: the usual decades up to the main size, the main size itself, and 10M when asked for.
        var decades = quick ? new[] { 10_000, 100_000 } : [100_000, 1_000_000, 10_000_000];
        var scaling = new SortedSet<int>(decades.Where(d => d <= mainRows)) { mainRows };
        if (full) scaling.Add(10_000_000);
        if (scaling.Count == 1) scaling.Add(Math.Max(1000, mainRows / 10));
        return o with
        {
            Rows = mainRows,
            ScalingRows = [.. scaling],
            CryptoMiB = cryptoMiB ?? (quick ? 64 : 256),
            CryptoRepetitions = quick ? 3 : 5,
            BaselineRepetitions = quick ? 2 : 3,
            EndToEndRepetitions = e2eReps ?? (quick ? 1 : 2),
            PsiRows = psiRows ?? (quick ? 10_000 : 100_000),
            Mode = quick ? "quick" : full ? "full" : "default",
        };
    }
}

/// <summary>--help was given.</summary>
internal sealed class HelpRequestedException : Exception
{
    public HelpRequestedException()
        : base("help requested")
    {
    }
}
