using System.Globalization;
using System.Security.Cryptography;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation;

/// <summary>What every platform's evidence is turned into, so one policy engine judges them all.</summary>
/// <param name="Platform">Platform tag (<c>sim</c>, <c>aws-nitro</c>, …).</param>
/// <param name="Simulated">True for the simulated platform, which a production KMS refuses.</param>
/// <param name="Measurement">Lower-case hex app measurement.</param>
/// <param name="PlatformTests">Named platform operational-test results (TCB values on hardware).</param>
/// <param name="ReportData">The 64 bytes the enclave bound into the evidence.</param>
/// <param name="IssuedAt">When the evidence was produced.</param>
/// <param name="Debug">True when the platform reports a debuggable enclave/VM, whose memory the host can read.</param>
public sealed record NormalisedClaims(
    string Platform,
    bool Simulated,
    string Measurement,
    IReadOnlyDictionary<string, string> PlatformTests,
    byte[] ReportData,
    DateTimeOffset IssuedAt,
    bool Debug = false);

/// <summary>Evidence that cannot be accepted, with the key-use refusal it maps to.</summary>
public sealed class EvidenceException(KeyUseRefusal refusal, string message) : Exception(message)
{
    /// <summary>Which check failed.</summary>
    public KeyUseRefusal Refusal { get; } = refusal;
}

/// <summary>Turns one platform's evidence into <see cref="NormalisedClaims"/>, checking its signature chain.</summary>
public interface IEvidenceVerifier
{
    /// <summary>The platform tag this verifier accepts.</summary>
    string Platform { get; }

    /// <summary>Verifies the evidence at the verifier's clock; throws <see cref="EvidenceException"/> on any failure.</summary>
    NormalisedClaims Verify(Evidence evidence);
}

/// <summary>The checks every verifier makes before it parses anything.</summary>
public static class EvidenceEnvelope
{
    /// <summary>Refuses evidence for another platform, an empty document, or one over <paramref name="maxBytes"/>, naming <paramref name="what"/>.</summary>
    public static void Check(Evidence evidence, string platform, string what, int maxBytes)
    {
        ArgumentNullException.ThrowIfNull(evidence);
        if (!string.Equals(evidence.Platform, platform, StringComparison.Ordinal))
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"evidence is for platform '{evidence.Platform}', this verifier accepts '{platform}'");
        if (evidence.Document is null || evidence.Document.Length == 0)
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"{what} is empty");
        if (evidence.Document.Length > maxBytes)
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"{what} is {evidence.Document.Length} bytes, the limit is {maxBytes}");
    }
}

/// <summary>Binding of the enclave's ephemeral public key and the KMS nonce into the evidence (report data).</summary>
public static class ReportDataBinding
{
    /// <summary>SHA-512(nonce ‖ SHA-256(public key)): 64 bytes, the size of every platform's report-data field.</summary>
    public static byte[] Compute(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> enclavePublicKey)
    {
        Span<byte> input = stackalloc byte[nonce.Length + 32];
        nonce.CopyTo(input);
        SHA256.HashData(enclavePublicKey, input[nonce.Length..]);
        return SHA512.HashData(input);
    }

    /// <summary>Constant-time comparison of the report data with the binding of this nonce and key.</summary>
    public static bool Matches(ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> enclavePublicKey)
        => CryptographicOperations.FixedTimeEquals(reportData, Compute(nonce, enclavePublicKey));
}

/// <summary>Compares verified claims with a party's registered reference values.</summary>
/// <remarks>
/// Rules, in this order (the first that fails is the refusal):
/// <list type="number">
/// <item>the platform tag equals <see cref="ReferenceValues.Platform"/> (<see cref="KeyUseRefusal.MeasurementMismatch"/>);</item>
/// <item>the measurement is one of <see cref="ReferenceValues.Measurements"/>, ignoring case (<see cref="KeyUseRefusal.MeasurementMismatch"/>);</item>
/// <item>every registered platform test is reported with exactly the registered value (<see cref="KeyUseRefusal.PlatformTestsMismatch"/>);
/// when <see cref="ReferenceValues.AcceptedTcbStatuses"/> is set, it replaces a registered <c>tcb.status</c> test;</item>
/// <item>simulated evidence reports no test that is not registered (<see cref="KeyUseRefusal.PlatformTestsMismatch"/>);</item>
/// <item>each <see cref="ReferenceValues.MinimumTcb"/> component, in ordinal order of its name, is reported and parses as an
/// integer at least the minimum (<see cref="KeyUseRefusal.PlatformTestsMismatch"/>);</item>
/// <item><see cref="ReferenceValues.AcceptedTcbStatuses"/>, when set, holds the reported <c>tcb.status</c> (ordinal; an empty
/// list accepts nothing) (<see cref="KeyUseRefusal.PlatformTestsMismatch"/>);</item>
/// <item>debuggable evidence only when <see cref="ReferenceValues.AllowDebug"/> (<see cref="KeyUseRefusal.DebugNotAllowed"/>).</item>
/// </list>
/// The TCB rules apply to whatever platform the reference values name; the simulated platform reports no TCB values, so
/// reference values for <c>sim</c> that set them refuse every simulated evidence.
/// </remarks>
public static class ReferenceValueMatcher
{
    /// <summary>The platform test that carries a hardware TCB status (Intel DCAP).</summary>
    public const string TcbStatusTest = "tcb.status";

    /// <summary>Returns null when the claims match, otherwise the refusal and a reason naming what differs.</summary>
    public static (KeyUseRefusal Refusal, string Reason)? Check(NormalisedClaims claims, ReferenceValues reference)
    {
        ArgumentNullException.ThrowIfNull(claims);
        ArgumentNullException.ThrowIfNull(reference);
        if (!string.Equals(claims.Platform, reference.Platform, StringComparison.Ordinal))
            return (KeyUseRefusal.MeasurementMismatch, $"evidence is from platform '{claims.Platform}', the reference values are for '{reference.Platform}'");
        if (!reference.Measurements.Any(m => string.Equals(m, claims.Measurement, StringComparison.OrdinalIgnoreCase)))
            return (KeyUseRefusal.MeasurementMismatch, $"app measurement {claims.Measurement} is not a registered reference value");
        var statusRule = reference.AcceptedTcbStatuses;
        foreach (var (name, expected) in reference.PlatformTests.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (statusRule is not null && string.Equals(name, TcbStatusTest, StringComparison.Ordinal))
                continue;
            if (!claims.PlatformTests.TryGetValue(name, out var actual))
                return (KeyUseRefusal.PlatformTestsMismatch, $"platform test '{name}' is missing from the evidence");
            if (!string.Equals(actual, expected, StringComparison.Ordinal))
                return (KeyUseRefusal.PlatformTestsMismatch, $"platform test '{name}' reported '{actual}', registered '{expected}'");
        }
        // The simulated platform's tests are a fixed set, so an extra one means a different platform build; hardware
        // evidence carries per-launch values (module ids, RTMRs) that nobody registers, so only registered ones count there.
        var extra = claims.Simulated ? claims.PlatformTests.Keys.Where(k => !reference.PlatformTests.ContainsKey(k)).Order(StringComparer.Ordinal).FirstOrDefault() : null;
        if (extra is not null)
            return (KeyUseRefusal.PlatformTestsMismatch, $"platform test '{extra}' is not in the registered reference values");
        if (CheckMinimumTcb(claims, reference.MinimumTcb) is { } tcbProblem)
            return (KeyUseRefusal.PlatformTestsMismatch, tcbProblem);
        if (statusRule is not null && CheckTcbStatus(claims, statusRule) is { } statusProblem)
            return (KeyUseRefusal.PlatformTestsMismatch, statusProblem);
        if (claims.Debug && !reference.AllowDebug)
            return (KeyUseRefusal.DebugNotAllowed, $"the evidence comes from a debuggable {claims.Platform} enclave, which the reference values do not allow");
        return null;
    }

    private static string? CheckMinimumTcb(NormalisedClaims claims, IReadOnlyDictionary<string, long>? minimum)
    {
        if (minimum is null)
            return null;
        foreach (var (name, least) in minimum.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!claims.PlatformTests.TryGetValue(name, out var reported))
                return $"TCB component '{name}' is missing from the evidence, the registered minimum is {least}";
            if (!long.TryParse(reported, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
                return $"TCB component '{name}' reported '{Printable(reported)}', which is not an integer (registered minimum {least})";
            if (value < least)
                return $"TCB component '{name}' is {value}, below the registered minimum {least}";
        }
        return null;
    }

    private static string? CheckTcbStatus(NormalisedClaims claims, IReadOnlyList<string> accepted)
    {
        if (!claims.PlatformTests.TryGetValue(TcbStatusTest, out var status))
            return $"the evidence reports no TCB status ('{TcbStatusTest}'), the reference values accept only {Accepted(accepted)}";
        if (!accepted.Contains(status, StringComparer.Ordinal))
        {
            var advisories = claims.PlatformTests.TryGetValue("tcb.advisories", out var a) && a.Length > 0 ? $" (advisories: {a})" : "";
            return $"TCB status is {status}{advisories}, the reference values accept only {Accepted(accepted)}";
        }
        return null;
    }

    private static string Accepted(IReadOnlyList<string> accepted) => accepted.Count == 0 ? "none" : string.Join(", ", accepted);

    private static string Printable(string s)
    {
        var cut = s.Length > 40 ? s[..40] + "…" : s;
        return new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }
}
