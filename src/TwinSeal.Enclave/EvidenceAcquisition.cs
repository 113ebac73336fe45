using TwinSeal.Attestation;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;

namespace TwinSeal.Enclave;

/// <summary>Produces evidence from the platform the isolated area runs on. One implementation per TEE backend.</summary>
public interface IEvidenceSource
{
    /// <summary>Platform tag of the evidence.</summary>
    string Platform { get; }

    /// <summary>True for the simulated backend.</summary>
    bool Simulated { get; }

    /// <summary>Evidence over the app measurement, the platform test results and the report data.</summary>
    Evidence Acquire(string appName, string measurement, IReadOnlyDictionary<string, string> platformTests, byte[] reportData);
}

/// <summary>
/// SIMULATION backend: signs the claims with the simulated device's attestation key, standing in for TEE firmware.
/// Honest at its boundary (real measurement, real self-tests, real signature) but a party that controls the
/// simulated device key can sign anything, which is why a production KMS refuses <c>sim</c> evidence.
/// </summary>
public sealed class SimEvidenceSource(SimAttester attester, TimeProvider clock) : IEvidenceSource
{
    /// <inheritdoc />
    public string Platform => SimClaims.PlatformTag;

    /// <inheritdoc />
    public bool Simulated => true;

    /// <inheritdoc />
    public Evidence Acquire(string appName, string measurement, IReadOnlyDictionary<string, string> platformTests, byte[] reportData)
        => attester.Sign(new SimClaims(appName, Convert.FromHexString(measurement), platformTests, reportData, clock.GetUtcNow()));
}

/// <summary>Binds a KMS nonce and the enclave's ephemeral public key into evidence (S15–S16).</summary>
/// <param name="measurement">Read at every report, so what was loaded since the last one counts.</param>
public sealed class EvidenceAcquisition(IEvidenceSource source, string appName, Func<string> measurement, IReadOnlyDictionary<string, string> platformTests, byte[] enclavePublicKey)
{
    /// <summary>Evidence whose report data is SHA-512(nonce ‖ SHA-256(public key)).</summary>
    public Evidence Attest(byte[] nonce)
    {
        if (nonce.Length is < 16 or > 64) throw new ProtocolException("bad-nonce", "A nonce is 16–64 bytes.");
        return source.Acquire(appName, measurement(), platformTests, ReportDataBinding.Compute(nonce, enclavePublicKey));
    }
}
