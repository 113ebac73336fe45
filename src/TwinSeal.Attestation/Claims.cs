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
public static class ReferenceValueMatcher
{
    /// <summary>Returns null when the claims match, otherwise the refusal and a reason naming what differs.</summary>
    public static (KeyUseRefusal Refusal, string Reason)? Check(NormalisedClaims claims, ReferenceValues reference)
    {
        if (!string.Equals(claims.Platform, reference.Platform, StringComparison.Ordinal))
            return (KeyUseRefusal.MeasurementMismatch, $"evidence is from platform '{claims.Platform}', the reference values are for '{reference.Platform}'");
        if (!reference.Measurements.Any(m => string.Equals(m, claims.Measurement, StringComparison.OrdinalIgnoreCase)))
            return (KeyUseRefusal.MeasurementMismatch, $"app measurement {claims.Measurement} is not a registered reference value");
        foreach (var (name, expected) in reference.PlatformTests.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
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
        if (claims.Debug && !reference.AllowDebug)
            return (KeyUseRefusal.DebugNotAllowed, $"the evidence comes from a debuggable {claims.Platform} enclave, which the reference values do not allow");
        return null;
    }
}
