using System.CommandLine;

namespace TwinSeal.KmsLoad;

/// <summary>Settings of one run, after <c>--quick</c> has filled in what was not given.</summary>
internal sealed record LoadOptions
{
    public required int Clients { get; init; }
    public required TimeSpan Warmup { get; init; }
    public required TimeSpan Duration { get; init; }
    public required TimeSpan HalfLoadWarmup { get; init; }
    public required TimeSpan HalfLoadDuration { get; init; }
    public required TimeSpan CryptoTime { get; init; }
    public required int CryptoRepetitions { get; init; }
    public string? Postgres { get; init; }
    public bool NoPostgres { get; init; }
    public string Phases { get; init; } = "ABC";
    public bool Json { get; init; }
    public bool Quick { get; init; }
    public bool Keep { get; init; }
    public required string WorkRoot { get; init; }
    public string Mode => Quick ? "quick" : "default";
}

/// <summary>The command line (System.CommandLine); the action is <see cref="Bench.RunAsync"/>.</summary>
internal static class LoadCommand
{
    public static RootCommand Build()
    {
        var clients = new Option<int>("--clients") { Description = "Concurrent clients of the closed-loop run (each loops nonce → evidence → signed key-use request).", DefaultValueFactory = _ => 128 };
        var duration = new Option<double?>("--duration") { Description = "Seconds of the measured closed-loop window per phase (default 20; 5 with --quick)." };
        var warmup = new Option<double?>("--warmup") { Description = "Seconds of unmeasured warm-up before it (default 5; 2 with --quick)." };
        var halfDuration = new Option<double?>("--half-duration") { Description = "Seconds of the measured half-load (open-loop) window per phase (default: --duration)." };
        var postgres = new Option<string?>("--postgres") { Description = "PostgreSQL server connection string (Npgsql syntax) on which the bench may CREATE DATABASE; default: $TWINSEAL_TEST_POSTGRES, else a throwaway cluster started with scripts/services/postgres." };
        var noPostgres = new Option<bool>("--no-postgres") { Description = "Run phase A (SQLite) only." };
        var phases = new Option<string>("--phases") { Description = "Which phases to run, e.g. AB or C (A: 1 replica on SQLite; B: 1 replica on PostgreSQL; C: 2 replicas on one PostgreSQL database).", DefaultValueFactory = _ => "ABC" };
        phases.Validators.Add(r =>
        {
            var v = r.GetValue(phases) ?? "";
            if (v.Length == 0 || v.Any(c => c is not ('A' or 'B' or 'C'))) r.AddError("--phases takes letters from A, B and C, e.g. ABC or BC.");
        });
        var json = new Option<bool>("--json") { Description = "Print one JSON document on stdout (tables and progress go to stderr)." };
        var quick = new Option<bool>("--quick") { Description = "A smoke run of about a minute: short windows, short crypto timing." };
        var keep = new Option<bool>("--keep") { Description = "Keep the work folder (KMS logs, data dirs) and the PostgreSQL databases." };
        var work = new Option<string?>("--work") { Description = "Work folder (default: a new folder under the temp directory)." };
        clients.Validators.Add(r => { if (r.GetValue(clients) < 1) r.AddError("--clients must be at least 1."); });
        foreach (var o in new[] { duration, warmup, halfDuration })
            o.Validators.Add(r => { if (r.GetValue(o) is < 0 or > 3600) r.AddError($"{o.Name} must be between 0 and 3600 seconds."); });
        duration.Validators.Add(r => { if (r.GetValue(duration) is <= 0) r.AddError("--duration must be more than 0 seconds."); });
        halfDuration.Validators.Add(r => { if (r.GetValue(halfDuration) is <= 0) r.AddError("--half-duration must be more than 0 seconds."); });

        var root = new RootCommand("""
            Load bench of the TwinSeal KMS key-use path: the single-thread crypto bound of one key release, then KMS replicas
            as real processes (A: SQLite; B: PostgreSQL; C: two replicas on one PostgreSQL database) driven over HTTPS by
            concurrent clients (closed loop), then at half the measured peak (open loop). See bench/README.md.
            """)
        {
            clients, duration, warmup, halfDuration, postgres, noPostgres, phases, json, quick, keep, work,
        };
        root.SetAction(async (pr, ct) =>
        {
            var isQuick = pr.GetValue(quick);
            var measured = TimeSpan.FromSeconds(pr.GetValue(duration) ?? (isQuick ? 5 : 20));
            var options = new LoadOptions
            {
                Clients = pr.GetValue(clients),
                Duration = measured,
                Warmup = TimeSpan.FromSeconds(pr.GetValue(warmup) ?? (isQuick ? 2 : 5)),
                HalfLoadDuration = pr.GetValue(halfDuration) is { } h ? TimeSpan.FromSeconds(h) : measured,
                HalfLoadWarmup = TimeSpan.FromSeconds(isQuick ? 1 : 2),
                CryptoTime = TimeSpan.FromSeconds(isQuick ? 0.5 : 1.5),
                CryptoRepetitions = isQuick ? 3 : 5,
                Postgres = pr.GetValue(postgres),
                NoPostgres = pr.GetValue(noPostgres),
                Phases = pr.GetValue(phases)!,
                Json = pr.GetValue(json),
                Quick = isQuick,
                Keep = pr.GetValue(keep),
                WorkRoot = Path.GetFullPath(pr.GetValue(work) ?? Path.Combine(Path.GetTempPath(), "twinseal-kmsload-" + Guid.NewGuid().ToString("N")[..8])),
            };
            return await Bench.RunAsync(options, ct);
        });
        return root;
    }
}
