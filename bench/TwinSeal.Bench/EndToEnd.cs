using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using TwinSeal.Cli.Demo;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.Bench;

/// <summary>One end-to-end run of the real flow with real processes.</summary>
/// <param name="Warm">Whether the services computed once (on 1,000 rows) before the timed computation.</param>
internal sealed record EndToEndResult(
    int Rows, ResultKind Kind, bool Warm, bool Success, string? Failure, long Matched, long Expected, bool SameData,
    double WallMilliseconds, IReadOnlyDictionary<string, double> Stages, IReadOnlyList<ProcessPeak> Peaks)
{
    /// <summary>Match-flow times of every repetition (this result is the fastest one).</summary>
    public IReadOnlyList<double> MatchMillisecondsOfRuns { get; init; } = [];

    /// <summary>Loading both tables into the isolated areas (S10–S12), then the sender's key use, encryption and send with the receiver's key use, decrypt + verify, join and output as it arrives (S13–S36). A demo that runs the receiver's part after the send has it as S26–S36, added when present.</summary>
    public double MatchMilliseconds => Stage("S10") + Stage("S13") + Stage("S26");

    /// <summary>One-time set-up before data moves: starting KMS, hosts and isolated areas, key creation, authority setting.</summary>
    public double SetupMilliseconds => Stage("start services") + Stage("S1–") + Stage("S5–");

    /// <summary>The stage whose name starts with <paramref name="prefix"/>, or 0.</summary>
    public double Stage(string prefix) => Stages.Where(s => s.Key.StartsWith(prefix, StringComparison.Ordinal)).Sum(s => s.Value);
}

/// <summary>Runs <see cref="DemoRunner"/> (KMS + two party hosts + two isolated areas, all separate processes on loopback).</summary>
internal static class EndToEnd
{
    public static string CliDll { get; } = Path.GetFullPath(typeof(EndToEnd).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "TwinSealCli").Value!);

    public static string EnclaveImage => Path.Combine(Path.GetDirectoryName(CliDll)!, "enclave");

    public static async Task<EndToEndResult> RunAsync(int rows, double overlap, int seed, ResultKind kind, bool warm, string workDirectory, GeneratedData reference, TextWriter log, bool keep)
    {
        if (Directory.Exists(workDirectory)) Directory.Delete(workDirectory, recursive: true);
        Directory.CreateDirectory(workDirectory);
        var options = new DemoOptions(rows, overlap, seed, KmsPlacement.Standalone, kind, workDirectory, WarmUp: warm);
        var runner = new DemoRunner(options, SelfLaunch.ForAssembly(CliDll), EnclaveImage, new PlainProgress(log));
        DemoSummary summary;
        IReadOnlyList<ProcessPeak> peaks;
        var sw = Stopwatch.StartNew();
        await using (var sampler = new ProcessMemorySampler(workDirectory, TimeSpan.FromMilliseconds(100)))
        {
            summary = await runner.RunAsync();
            peaks = sampler.Peaks;
        }
        var wall = sw.Elapsed.TotalMilliseconds;

        // The demo generated its own copy of the data with the same seed; it must be byte-for-byte what the
        // baselines read, or the comparison compares different work.
        var same = SameFile(Path.Combine(workDirectory, "data", "party1.csv"), reference.Party1Csv)
            && SameFile(Path.Combine(workDirectory, "data", "party2.csv"), reference.Party2Csv);
        // A failed run's folder (logs, stores) is kept so it can be looked into; the failure names it.
        if (!keep && summary.Success)
        {
            try
            {
                Directory.Delete(workDirectory, recursive: true);
            }
            catch (IOException)
            {
                // A file still held by a process that is being stopped; the temp cleaner gets it.
            }
        }
        return new EndToEndResult(rows, kind, warm, summary.Success, summary.Success ? null : (summary.Failure ?? DescribeFailure(summary)) + $" (work folder {workDirectory})",
            summary.Matched, summary.Expected, same, wall, summary.StageMilliseconds, peaks);
    }

    private static string DescribeFailure(DemoSummary s)
    {
        var parts = new List<string>();
        if (s.Matched != s.Expected) parts.Add($"matched {s.Matched}, expected {s.Expected}");
        var notRefused = s.Refusals.Where(r => !r.Refused).Select(r => r.Attack).ToList();
        if (notRefused.Count > 0) parts.Add("not refused: " + string.Join(", ", notRefused));
        if (!s.Audit.Valid) parts.Add("audit: " + s.Audit.Problem);
        return parts.Count == 0 ? "the demo reported failure" : string.Join("; ", parts);
    }

    private static bool SameFile(string a, string b)
    {
        if (!File.Exists(a) || !File.Exists(b)) return false;
        if (new FileInfo(a).Length != new FileInfo(b).Length) return false;
        using var fa = File.OpenRead(a);
        using var fb = File.OpenRead(b);
        return SHA256.HashData(fa).AsSpan().SequenceEqual(SHA256.HashData(fb));
    }
}
