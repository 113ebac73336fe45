using System.Diagnostics;
using System.Threading.Channels;

namespace TwinSeal.KmsLoad;

/// <summary>Latency percentiles in milliseconds (nearest rank).</summary>
internal sealed record Percentiles(double P50, double P90, double P99, double Max, double Mean)
{
    public static readonly Percentiles Empty = new(double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);

    public static Percentiles Of(List<double> values)
    {
        if (values.Count == 0) return Empty;
        values.Sort();
        double At(double p) => values[Math.Clamp((int)Math.Ceiling(p * values.Count) - 1, 0, values.Count - 1)];
        return new Percentiles(At(0.50), At(0.90), At(0.99), values[^1], values.Average());
    }
}

/// <summary>What one measured window gave.</summary>
/// <param name="Mode">"closed" (fixed clients, each loops) or "open" (fixed arrival rate).</param>
/// <param name="TargetPerSecond">Open loop: the arrival rate asked for.</param>
/// <param name="KeyUse">The key-use request alone: signed request handed to HTTP → response read.</param>
/// <param name="Cycle">Nonce request + evidence + key-use; in the open loop from the scheduled arrival, so generator queueing counts.</param>
/// <param name="Server">The KMS's own key-use histogram over the window (null if it exports none).</param>
/// <param name="StartLag">Open loop: how late cycles started against their schedule (a sign the generator could not keep up).</param>
internal sealed record RunResult(
    string Mode, int Concurrency, double Seconds, double? TargetPerSecond, long Releases, double ReleasesPerSecond,
    Percentiles KeyUse, Percentiles Nonce, Percentiles Cycle, Percentiles? StartLag,
    long Errors, IReadOnlyDictionary<string, long> ErrorsByCode, long WarmupErrors, IReadOnlyDictionary<string, long> WarmupErrorsByCode, CpuUse Cpu, ServerSide? Server);

/// <summary>Drives <see cref="LoadClient"/>s: closed loop for the peak, open loop at a fixed rate.</summary>
internal static class LoadRun
{
    private sealed class Recorder
    {
        public List<Cycle> Cycles { get; } = new(4096);
        public List<Failure> Failures { get; } = [];
    }

    /// <summary>Every client loops cycles back to back; cycles that complete inside [warm-up end, end) count.</summary>
    public static async Task<RunResult> ClosedAsync(IReadOnlyList<LoadClient> clients, TimeSpan warmup, TimeSpan duration, CpuMeter meter, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var from = start + Ticks(warmup);
        var to = from + Ticks(duration);
        var cpu = MeasureCpuAsync(meter, from, to, ct);
        var recorders = clients.Select(_ => new Recorder()).ToArray();
        var workers = clients.Select((c, i) => Task.Run(async () =>
        {
            var rec = recorders[i];
            while (!ct.IsCancellationRequested && Stopwatch.GetTimestamp() < to)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    rec.Cycles.Add(await c.RunAsync(started));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    rec.Failures.Add(new Failure(started, Stopwatch.GetTimestamp(), LoadClient.Classify(e)));
                    // A KMS that refuses at once must not turn this loop into a spin that starves the KMS of CPU.
                    await Task.Delay(5, CancellationToken.None);
                }
            }
        }, CancellationToken.None)).ToArray();
        await Task.WhenAll(workers);
        var (use, server) = await cpu;
        return Summarise("closed", clients.Count, null, recorders, from, to, c => c.Done, f => f.Done, use, server);
    }

    /// <summary>
    /// Arrivals at a fixed rate (a token bucket refilled every millisecond), each served by whichever of the clients is
    /// free; cycles scheduled inside [warm-up end, end) count, and their cycle latency runs from the scheduled arrival.
    /// </summary>
    public static async Task<RunResult> OpenAsync(IReadOnlyList<LoadClient> clients, double perSecond, TimeSpan warmup, TimeSpan duration, CpuMeter meter, CancellationToken ct)
    {
        var start = Stopwatch.GetTimestamp();
        var from = start + Ticks(warmup);
        var to = from + Ticks(duration);
        var cpu = MeasureCpuAsync(meter, from, to, ct);
        var arrivals = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleWriter = true });
        var recorders = clients.Select(_ => new Recorder()).ToArray();
        var workers = clients.Select((c, i) => Task.Run(async () =>
        {
            var rec = recorders[i];
            await foreach (var scheduled in arrivals.Reader.ReadAllAsync(CancellationToken.None))
            {
                try
                {
                    rec.Cycles.Add(await c.RunAsync(scheduled));
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    rec.Failures.Add(new Failure(scheduled, Stopwatch.GetTimestamp(), LoadClient.Classify(e)));
                }
            }
        }, CancellationToken.None)).ToArray();

        var interval = Stopwatch.Frequency / perSecond;
        var next = (double)start;
        while (!ct.IsCancellationRequested)
        {
            var now = Stopwatch.GetTimestamp();
            while (next <= now && next < to)
            {
                arrivals.Writer.TryWrite((long)next);
                next += interval;
            }
            if (next >= to) break;
            await Task.Delay(1, CancellationToken.None);
        }
        arrivals.Writer.Complete();
        await Task.WhenAll(workers);
        // The cycle of an open-loop arrival starts at its scheduled time, so the generator's own queueing is in it.
        var (use, server) = await cpu;
        return Summarise("open", clients.Count, perSecond, recorders, from, to, c => c.Started, f => f.Started, use, server);
    }

    private static RunResult Summarise(string mode, int concurrency, double? target, Recorder[] recorders, long from, long to, Func<Cycle, long> cycleAt, Func<Failure, long> failureAt, CpuUse cpu, ServerSide? server)
    {
        bool In(long t) => t >= from && t < to;
        var cycles = recorders.SelectMany(r => r.Cycles).Where(c => In(cycleAt(c))).ToList();
        var failures = recorders.SelectMany(r => r.Failures).ToList();
        var counted = failures.Where(f => In(failureAt(f))).ToList();
        var warm = failures.Where(f => failureAt(f) < from).ToList();
        static double Ms(long a, long b) => Stopwatch.GetElapsedTime(a, b).TotalMilliseconds;
        var seconds = Stopwatch.GetElapsedTime(from, to).TotalSeconds;
        return new RunResult(
            mode, concurrency, seconds, target, cycles.Count, cycles.Count / seconds,
            Percentiles.Of([.. cycles.Select(c => Ms(c.Sent, c.Done))]),
            Percentiles.Of([.. cycles.Select(c => Ms(c.Began, c.NonceDone))]),
            Percentiles.Of([.. cycles.Select(c => Ms(c.Started, c.Done))]),
            mode == "open" ? StartLag(recorders, from, to) : null,
            counted.Count, ByCode(counted), warm.Count, ByCode(warm), cpu, server);
    }

    private static Percentiles StartLag(Recorder[] recorders, long from, long to)
        => Percentiles.Of([.. recorders.SelectMany(r => r.Cycles).Where(c => c.Started >= from && c.Started < to).Select(c => Stopwatch.GetElapsedTime(c.Started, c.Began).TotalMilliseconds)]);

    private static SortedDictionary<string, long> ByCode(IEnumerable<Failure> failures)
        => new(failures.GroupBy(f => f.Code).ToDictionary(g => g.Key, g => (long)g.Count()), StringComparer.Ordinal);

    // The histogram is scraped just before the CPU snapshot at the start and just after it at the end, so the scrape's
    // own cost stays out of the CPU window.
    private static async Task<(CpuUse, ServerSide?)> MeasureCpuAsync(CpuMeter meter, long from, long to, CancellationToken ct)
    {
        await DelayUntilAsync(from, ct);
        var h0 = await meter.ScrapeAsync();
        var a = meter.Take();
        await DelayUntilAsync(to, ct);
        var b = meter.Take();
        var h1 = await meter.ScrapeAsync();
        return (CpuMeter.Between(a, b), h0 is null || h1 is null ? null : ServerSide.Of(h1.Minus(h0)));
    }

    private static async Task DelayUntilAsync(long timestamp, CancellationToken ct)
    {
        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (wait > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(wait, ct);
            }
            catch (OperationCanceledException)
            {
                // Cancelled: the CPU use of the part that ran is still returned.
            }
        }
    }

    private static long Ticks(TimeSpan t) => (long)(t.TotalSeconds * Stopwatch.Frequency);
}
