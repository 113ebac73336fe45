using System.Globalization;
using TwinSeal.Party;
using TwinSeal.Protocol;

namespace TwinSeal.KmsLoad;

/// <summary>
/// The KMS's own key-use duration histogram (<c>twinseal_kms_key_use_duration_seconds</c>, outcome <c>released</c>) from
/// its Prometheus endpoint <c>/metrics</c>: the time from reading a request's body to its answer being ready, so
/// without TLS, HTTP parsing, queueing in Kestrel, or the network. Cumulative; the difference of two scrapes covers a window.
/// </summary>
/// <summary>The KMS's own view of a window's releases: count, mean and bucket-interpolated quantiles, share within 5 ms.</summary>
internal sealed record ServerSide(long Releases, double MeanMs, double P50Ms, double P99Ms, double ShareWithin5Ms)
{
    public static ServerSide Of(ServerHistogram h) => new(h.Count, h.MeanMilliseconds, h.QuantileMilliseconds(0.5), h.QuantileMilliseconds(0.99), h.ShareWithin(0.005));
}

internal sealed record ServerHistogram(IReadOnlyList<(double Le, long Count)> Buckets, double SumSeconds, long Count)
{
    private const string Name = "twinseal_kms_key_use_duration_seconds";

    public static readonly ServerHistogram Empty = new([], 0, 0);

    /// <summary>Scrapes every replica and adds their histograms; null when a replica has no such metric (e.g. an older KMS).</summary>
    public static async Task<ServerHistogram?> ScrapeAsync(IReadOnlyList<RemoteClient> replicas)
    {
        ServerHistogram? total = Empty;
        foreach (var r in replicas)
        {
            byte[] text;
            try
            {
                text = await r.SendAsync(HttpMethod.Get, "/metrics", null);
            }
            catch (RemoteProblemException)
            {
                return null;
            }
            var one = Parse(System.Text.Encoding.UTF8.GetString(text));
            if (one is null) return null;
            total = total.Plus(one, +1);
        }
        return total;
    }

    /// <summary>The histogram of what happened between <paramref name="earlier"/> and this one.</summary>
    public ServerHistogram Minus(ServerHistogram earlier) => Plus(earlier, -1);

    private ServerHistogram Plus(ServerHistogram other, int sign)
    {
        if (Buckets.Count == 0) return sign > 0 ? other : this;
        if (other.Buckets.Count == 0) return this;
        var buckets = Buckets.Zip(other.Buckets, (a, b) => (a.Le, a.Count + sign * b.Count)).ToList();
        return new ServerHistogram(buckets, SumSeconds + sign * other.SumSeconds, Count + sign * other.Count);
    }

    public double MeanMilliseconds => Count == 0 ? double.NaN : SumSeconds / Count * 1000;

    /// <summary>Share of releases the KMS answered within <paramref name="seconds"/> (a bucket boundary).</summary>
    public double ShareWithin(double seconds)
        => Count == 0 ? double.NaN : Buckets.Where(b => b.Le <= seconds + 1e-12).Select(b => b.Count).DefaultIfEmpty(0).Max() / (double)Count;

    /// <summary>A quantile interpolated linearly inside its bucket, in milliseconds (as Prometheus' histogram_quantile does).</summary>
    public double QuantileMilliseconds(double q)
    {
        if (Count == 0) return double.NaN;
        var rank = q * Count;
        double lower = 0;
        long below = 0;
        foreach (var (le, cumulative) in Buckets)
        {
            if (cumulative >= rank)
            {
                if (double.IsPositiveInfinity(le)) return lower * 1000;
                var inBucket = cumulative - below;
                return (lower + (le - lower) * (inBucket == 0 ? 1 : (rank - below) / inBucket)) * 1000;
            }
            lower = le;
            below = cumulative;
        }
        return lower * 1000;
    }

    private static ServerHistogram? Parse(string text)
    {
        var buckets = new List<(double, long)>();
        double? sum = null;
        long? count = null;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(Name, StringComparison.Ordinal) || !line.Contains("outcome=\"released\"", StringComparison.Ordinal)) continue;
            var value = line[(line.LastIndexOf(' ') + 1)..].Trim();
            if (line.StartsWith(Name + "_bucket", StringComparison.Ordinal))
            {
                var at = line.IndexOf("le=\"", StringComparison.Ordinal) + 4;
                var le = line[at..line.IndexOf('"', at)];
                buckets.Add((le == "+Inf" ? double.PositiveInfinity : double.Parse(le, CultureInfo.InvariantCulture), (long)double.Parse(value, CultureInfo.InvariantCulture)));
            }
            else if (line.StartsWith(Name + "_sum", StringComparison.Ordinal)) sum = double.Parse(value, CultureInfo.InvariantCulture);
            else if (line.StartsWith(Name + "_count", StringComparison.Ordinal)) count = (long)double.Parse(value, CultureInfo.InvariantCulture);
        }
        // No release yet: the series does not exist; that is an empty histogram, not a missing metric.
        if (buckets.Count == 0) return text.Contains("twinseal_kms_", StringComparison.Ordinal) ? Empty : null;
        buckets.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return new ServerHistogram(buckets, sum ?? 0, count ?? 0);
    }
}
