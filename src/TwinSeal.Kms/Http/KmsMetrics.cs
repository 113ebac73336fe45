using System.Data.Common;
using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using TwinSeal.Kms.Store;
using TwinSeal.Protocol;

namespace TwinSeal.Kms.Http;

/// <summary>
/// The KMS's own instruments on the meter <see cref="MeterName"/>. The standalone KMS exports them in Prometheus text
/// format at <c>/metrics</c>, where OpenTelemetry names counters <c>…_total</c> and the duration histogram
/// <c>twinseal_kms_key_use_duration_seconds</c>.
/// </summary>
/// <remarks>
/// The meter comes from the host's <see cref="IMeterFactory"/>, so each KMS in a process has its own instruments, disposed
/// with the host, and an exporter can keep to its own host's by the meter's scope (as <see cref="KmsServer"/> does).
/// </remarks>
public sealed class KmsMetrics
{
    /// <summary>Name of the meter every instrument here belongs to.</summary>
    public const string MeterName = "TwinSeal.Kms";

    /// <summary>Bucket boundaries of the key-use duration, in seconds.</summary>
    /// <remarks>
    /// A release is an evidence check, a durable nonce write and an HPKE wrap: milliseconds when healthy, seconds only
    /// when the store stalls. OpenTelemetry's default boundaries (0, 5, 10, 25 … 10 000) assume milliseconds and would put
    /// every healthy release of a histogram in seconds into the first bucket.
    /// </remarks>
    public static readonly IReadOnlyList<double> KeyUseDurationBuckets =
        [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary><c>outcome</c> of a key-use request whose data key was released.</summary>
    public const string Released = "released";
    /// <summary><c>outcome</c> of a key-use request refused by a release check (the 403 with a <c>refusal</c> code).</summary>
    public const string Refused = "refused";
    /// <summary><c>outcome</c> of a key-use request rejected before the release checks: unauthenticated, malformed, too large.</summary>
    public const string Rejected = "rejected";
    /// <summary><c>outcome</c> of a key-use request that failed because the store could not be reached.</summary>
    public const string StoreUnavailable = "store-unavailable";
    /// <summary><c>outcome</c> of a key-use request whose client went away.</summary>
    public const string Cancelled = "cancelled";
    /// <summary><c>outcome</c> of a key-use request that failed any other way (a 500).</summary>
    public const string Failed = "error";

    private readonly Counter<long> _releases;
    private readonly Counter<long> _refusals;
    private readonly Counter<long> _storeUnavailable;
    private readonly Histogram<double> _keyUseDuration;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public KmsMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        _releases = meter.CreateCounter<long>("twinseal_kms_key_releases", "{release}",
            "Data keys released to an attested enclave.");
        _refusals = meter.CreateCounter<long>("twinseal_kms_key_refusals", "{refusal}",
            "Key-use requests refused by a release check; tag reason is the refusal code.");
        _storeUnavailable = meter.CreateCounter<long>("twinseal_kms_store_unavailable", "{response}",
            "KMS API responses with status 503 (the store could not be reached); tag route is the endpoint's route pattern.");
        _keyUseDuration = meter.CreateHistogram("twinseal_kms_key_use_duration", "s",
            "Time the KMS spent on a key-use request, from reading its body until its answer was ready; tag outcome.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = KeyUseDurationBuckets });
    }

    /// <summary>Counts a released data key.</summary>
    public void KeyReleased() => _releases.Add(1);

    /// <summary>Counts a refusal under its kebab-case code (<see cref="Release.KeyRelease.Code"/>).</summary>
    public void KeyRefused(string reason) => _refusals.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Records how long one key-use request took and how it ended (one of this class's outcome constants).</summary>
    public void KeyUseCompleted(TimeSpan elapsed, string outcome)
        => _keyUseDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>Counts a 503 answered on <paramref name="route"/> (a route pattern, so the tag's values stay few).</summary>
    public void StoreUnavailableResponse(string route) => _storeUnavailable.Add(1, new KeyValuePair<string, object?>("route", route));

    /// <summary>The outcome of a key-use request that ended with <paramref name="error"/> rather than a response.</summary>
    public static string OutcomeOf(Exception error) => error switch
    {
        // Mirrors the status HttpsLoopbackHost gives the exception, so outcome and response agree.
        StoreUnavailableException or DbException or KmsException { Status: 503 } => StoreUnavailable,
        ProtocolException or BadHttpRequestException or System.Text.Json.JsonException => Rejected,
        OperationCanceledException => Cancelled,
        _ => Failed,
    };
}
