using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.Cose;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Sim;

/// <summary>
/// SIMULATION. Signs claims with a simulated device's attestation key, as a TEE's firmware would sign a report:
/// COSE_Sign1, ES256, the attestation certificate in the protected x5chain header (label 33).
/// </summary>
public sealed class SimAttester : IDisposable
{
    private static readonly CoseHeaderLabel X5Chain = new(33);
    private readonly ECDsa _key;
    private readonly byte[] _certificate;

    private SimAttester(ECDsa key, byte[] certificate)
    {
        _key = key;
        _certificate = certificate;
    }

    /// <summary>Loads the device's attestation key and certificate from <paramref name="deviceDir"/>.</summary>
    public static SimAttester Load(string deviceDir)
    {
        var certPath = Path.Combine(deviceDir, SimPlatform.DeviceCertificateFile);
        var keyPath = Path.Combine(deviceDir, SimPlatform.DeviceKeyFile);
        if (!File.Exists(certPath) || !File.Exists(keyPath))
            throw new InvalidOperationException($"No simulated platform is provisioned in '{deviceDir}' (expected {SimPlatform.DeviceCertificateFile} and {SimPlatform.DeviceKeyFile}).");
        using var cert = PemCertificate.Load(certPath);
        var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(keyPath));
        return new SimAttester(key, cert.RawData);
    }

    /// <summary>Creates with an explicit key and certificate (tests use this to sign with untrusted keys).</summary>
    public static SimAttester FromKey(ECDsa key, X509Certificate2 certificate) => new(key, certificate.RawData);

    /// <summary>Signs the claims into evidence.</summary>
    public Evidence Sign(SimClaims claims)
    {
        var headers = new CoseHeaderMap();
        var w = new CborWriter();
        w.WriteByteString(_certificate);
        headers.Add(X5Chain, CoseHeaderValue.FromEncodedValue(w.Encode()));
        var signer = new CoseSigner(_key, HashAlgorithmName.SHA256, headers);
        return new Evidence(SimClaims.PlatformTag, CoseSign1Message.SignEmbedded(claims.Encode(), signer));
    }

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}

/// <summary>
/// Verifies simulated evidence: COSE_Sign1 with ES256 by a key whose certificate chains to a configured
/// simulated platform root, then strict claims decoding.
/// </summary>
public sealed class SimEvidenceVerifier(X509Certificate2Collection trustedRoots, TimeProvider clock) : IEvidenceVerifier
{
    private static readonly CoseHeaderLabel X5Chain = new(33);
    private const int Es256 = -7;
    private const int MaxEvidenceBytes = 64 * 1024;
    // Freshness comes from the single-use nonce; the issue time only catches grossly wrong or stale evidence.
    private static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan MaxEvidenceAge = TimeSpan.FromMinutes(10);

    /// <inheritdoc />
    public string Platform => SimClaims.PlatformTag;

    /// <inheritdoc />
    public NormalisedClaims Verify(Evidence evidence)
    {
        EvidenceEnvelope.Check(evidence, SimClaims.PlatformTag, "evidence document", MaxEvidenceBytes);
        var (msg, algorithm, content) = CoseSign1Document.Decode(evidence.Document, "evidence");
        if (algorithm != Es256)
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, "evidence must be signed with ES256");
        if (!msg.ProtectedHeaders.TryGetValue(X5Chain, out var x5))
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "evidence carries no attestation certificate (x5chain)");

        using var leaf = ParseCertificate(x5);
        ECDsa publicKey;
        try
        {
            // Certificate fields are decoded lazily, so a corrupted certificate can fail anywhere in here.
            CheckChain(leaf);
            publicKey = leaf.GetECDsaPublicKey()
                ?? throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "attestation certificate does not hold an ECDSA key");
        }
        catch (CryptographicException e)
        {
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, $"attestation certificate cannot be checked: {e.Message}");
        }
        using var _ = publicKey;
        if (publicKey.KeySize != 256)
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "attestation key must be P-256");
        bool valid;
        try
        {
            valid = msg.VerifyEmbedded(publicKey);
        }
        catch (CryptographicException e)
        {
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"evidence signature cannot be checked: {e.Message}");
        }
        if (!valid)
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "evidence signature does not verify with the attestation certificate");

        SimClaims claims;
        try
        {
            claims = SimClaims.Decode(content);
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or FormatException or OverflowException or ArgumentOutOfRangeException)
        {
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"evidence claims are malformed: {e.Message}");
        }
        var now = clock.GetUtcNow();
        if (claims.IssuedAt > now + MaxClockSkew || claims.IssuedAt < now - MaxEvidenceAge)
            throw new EvidenceException(KeyUseRefusal.EvidenceInvalid, $"evidence was issued at {claims.IssuedAt:O}, outside the accepted window around {now:O}");
        return new NormalisedClaims(SimClaims.PlatformTag, Simulated: true, Convert.ToHexStringLower(claims.Measurement), claims.PlatformTests, claims.ReportData, claims.IssuedAt);
    }

    private static X509Certificate2 ParseCertificate(CoseHeaderValue x5)
    {
        try
        {
            var r = new CborReader(x5.EncodedValue);
            var der = r.ReadByteString();
            return X509CertificateLoader.LoadCertificate(der);
        }
        catch (Exception e) when (e is CborContentException or InvalidOperationException or CryptographicException)
        {
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, $"attestation certificate is malformed: {e.Message}");
        }
    }

    private void CheckChain(X509Certificate2 leaf)
    {
        // The attestation key is a device key: a CA certificate (such as the platform root itself) may not sign evidence.
        var constraints = leaf.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
        if (constraints is { CertificateAuthority: true })
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "evidence is signed by a CA certificate, not by a device attestation key");
        var usage = leaf.Extensions.OfType<X509KeyUsageExtension>().FirstOrDefault();
        if (usage is not null && !usage.KeyUsages.HasFlag(X509KeyUsageFlags.DigitalSignature))
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, "the attestation certificate does not allow digital signatures");
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trustedRoots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = clock.GetUtcNow().UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (!chain.Build(leaf))
        {
            var status = string.Join("; ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()).Where(s => s.Length > 0).Distinct());
            throw new EvidenceException(KeyUseRefusal.EvidenceUntrusted, $"attestation certificate does not chain to a trusted simulated platform root ({status})");
        }
    }
}
