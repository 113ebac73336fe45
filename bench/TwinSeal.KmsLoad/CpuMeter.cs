using System.Diagnostics;
using System.Globalization;

namespace TwinSeal.KmsLoad;

/// <summary>Cores used on average over a measured window, by who used them.</summary>
/// <param name="Generator">This process: the load generator (clients' signing, evidence, TLS, JSON).</param>
/// <param name="Kms">All KMS replica processes together.</param>
/// <param name="Postgres">The PostgreSQL cluster the phase uses (its postmaster and every child: backends, WAL writer, checkpointer); 0 for SQLite or a server on another machine.</param>
/// <param name="MachineBusy">Share of all cores' time that was not idle (from /proc/stat), including other users of the machine.</param>
internal sealed record CpuUse(double Generator, double Kms, double Postgres, double MachineBusy)
{
    public static readonly CpuUse None = new(0, 0, 0, 0);
}

/// <summary>Snapshots of CPU time (this process, the KMS replicas, PostgreSQL, the whole machine); the difference of two is a <see cref="CpuUse"/>.</summary>
internal sealed class CpuMeter(IReadOnlyList<KmsReplica> replicas, int? postmasterPid) : IDisposable
{
    private readonly IReadOnlyList<TwinSeal.Party.RemoteClient> _metrics = [.. replicas.Select(r => new TwinSeal.Party.RemoteClient(r.Endpoint, TimeSpan.FromSeconds(30)))];

    /// <summary>The replicas' key-use histograms added up, or null when they export none.</summary>
    public Task<ServerHistogram?> ScrapeAsync() => ServerHistogram.ScrapeAsync(_metrics);

    public void Dispose()
    {
        foreach (var m in _metrics) m.Dispose();
    }

    public readonly record struct Snapshot(long Timestamp, TimeSpan Generator, TimeSpan Kms, TimeSpan Postgres, long BusyTicks, long TotalTicks);

    public Snapshot Take()
    {
        var (busy, total) = MachineTicks();
        var kms = TimeSpan.Zero;
        foreach (var r in replicas) kms += r.CpuTime;
        return new Snapshot(Stopwatch.GetTimestamp(), Process.GetCurrentProcess().TotalProcessorTime, kms, postmasterPid is { } pm ? ClusterTime(pm) : TimeSpan.Zero, busy, total);
    }

    public static CpuUse Between(Snapshot a, Snapshot b)
    {
        var wall = Stopwatch.GetElapsedTime(a.Timestamp, b.Timestamp).TotalSeconds;
        if (wall <= 0) return CpuUse.None;
        var total = b.TotalTicks - a.TotalTicks;
        return new CpuUse(
            (b.Generator - a.Generator).TotalSeconds / wall,
            (b.Kms - a.Kms).TotalSeconds / wall,
            Math.Max(0, (b.Postgres - a.Postgres).TotalSeconds / wall),
            total > 0 ? (b.BusyTicks - a.BusyTicks) / (double)total : 0);
    }

    // Backends that connect or exit inside the window are counted only for the part they overlap it; the KMS pools its
    // connections, so those are few. Linux reports CPU time in clock ticks of 1/100 s.
    private static TimeSpan ClusterTime(int postmaster)
    {
        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0])) continue;
            if (ReadStat(name) is not { } st) continue;
            if (st.Pid == postmaster || st.Parent == postmaster) ticks += st.Ticks;
        }
        return TimeSpan.FromSeconds(ticks / 100.0);
    }

    /// <summary>Pid, parent pid and user+system clock ticks from /proc/PID/stat, or null when it is gone or unreadable.</summary>
    public static (int Pid, int Parent, long Ticks)? ReadStat(string pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            // The command name is in parentheses and may hold spaces; the fields after it are space-separated.
            var rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return (int.Parse(pid, CultureInfo.InvariantCulture), int.Parse(rest[1], CultureInfo.InvariantCulture),
                long.Parse(rest[11], CultureInfo.InvariantCulture) + long.Parse(rest[12], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Busy and total jiffies of all cores from the first line of /proc/stat; zeros where there is none.</summary>
    private static (long Busy, long Total) MachineTicks()
    {
        try
        {
            var first = File.ReadLines("/proc/stat").First();
            var f = first.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            var total = f.Sum();
            var idle = f[3] + f[4]; // idle + iowait
            return (total - idle, total);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or InvalidOperationException)
        {
            return (0, 0);
        }
    }
}
