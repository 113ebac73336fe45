using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.Cose;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AwsNitro;

/// <summary>Options of <see cref="AwsNitroVerifier"/>.</summary>
public sealed record AwsNitroVerifierOptions
{
    /// <summary>
    /// Accept documents from enclaves started in debug mode (PCR0, PCR1 and PCR2 all zero), whose memory and
    /// console the parent instance can read. Off by default; only for development.
    /// </summary>
    public bool AllowDebug { get; init; }
}

/// <summary>
/// Verifies AWS Nitro Enclaves attestation documents (platform <c>aws-nitro</c>): a COSE_Sign1 message (CBOR tag 18
/// optional) with ES384, whose payload carries the signing certificate and its CA bundle; the certificate must chain
/// through the bundle to the pinned AWS Nitro Enclaves root at the verifier's clock, and its P-384 key must verify the
/// signature.
/// </summary>
/// <remarks>
/// <para>Normalised claims: <see cref="NormalisedClaims.Measurement"/> is PCR0 (the enclave image), platform tests
/// are <c>pcr0</c>…<c>pcr8</c> (those present, lower-case hex) and <c>module_id</c>, <see cref="NormalisedClaims.IssuedAt"/>
/// is the document timestamp and <see cref="NormalisedClaims.Debug"/> is true when PCR0–2 are all zero.</para>
/// <para>Report data: TwinSeal enclaves put the 64-byte binding SHA-512(nonce ‖ SHA-256(public key)) into
/// <c>user_data</c> (the document's own <c>nonce</c> and <c>public_key</c> fields are not used). The verifier returns
/// <c>user_data</c> exactly as signed, whatever its length, and an empty array when it is absent; it never hashes,
/// pads or truncates it, so a document whose <c>user_data</c> is not such a binding simply fails the binding check
/// (<see cref="ReportDataBinding.Matches"/>) instead of being made to look like one.</para>
/// </remarks>
public sealed class AwsNitroVerifier : IEvidenceVerifier
{
    /// <summary>The platform tag of AWS Nitro Enclaves evidence.</summary>
    public const string PlatformTag = "aws-nitro";

    private const int Es384 = -35;
    private const int P384KeySize = 384;
    private const int MaxEvidenceBytes = 64 * 1024;
    private const int MaxNamedPcr = 8;

    private readonly byte[] _pinnedRootDer;
    private readonly X509Certificate2 _pinnedRoot;
    private readonly TimeProvider _clock;
    private readonly AwsNitroVerifierOptions _options;

    /// <summary>Creates a verifier that trusts only <paramref name="pinnedRoot"/> (the AWS Nitro Enclaves root certificate).</summary>
    /// <param name="pinnedRoot">The pinned root; the verifier keeps its own copy, so the caller may dispose it.</param>
    /// <param name="clock">Clock at which certificate validity is judged.</param>
    /// <param name="options">Options; defaults refuse debug-mode enclaves.</param>
    public AwsNitroVerifier(X509Certificate2 pinnedRoot, TimeProvider clock, AwsNitroVerifierOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(pinnedRoot);
        ArgumentNullException.ThrowIfNull(clock);
        _pinnedRootDer = pinnedRoot.RawData;
        _pinnedRoot = X509CertificateLoader.LoadCertificate(_pinnedRootDer);
        _clock = clock;
        _options = options ?? new AwsNitroVerifierOptions();
    }

    /// <inheritdoc />
    public string Platform => PlatformTag;

    /// <inheritdoc />
    public NormalisedClaims Verify(Evidence evidence)
    {
        EvidenceEnvelope.Check(evidence, PlatformTag, "attestation document", MaxEvidenceBytes);

        var message = DecodeCose(evidence.Document);
        var document = AwsNitroDocument.Decode(message.Content!.Value);

        var certificates = new List<X509Certificate2>();
        try
        {
            var leaf = LoadCertificate(document.Certificate, "certificate", certificates);
            var bundle = document.CaBundle.Select((der, i) => LoadCertificate(der, $"cabundle[{i}]", certificates)).ToList();
            CheckChain(leaf, document.CaBundle, bundle);
            CheckSignature(message, leaf);
        }
        catch (CryptographicException e)
        {
            // A certificate that loads can still hold fields that fail later (e.g. a garbled validity date).
            throw Invalid($"attestation document certificates cannot be processed: {e.Message}");
        }
        finally
        {
            foreach (var c in certificates) c.Dispose();
        }

        return ToClaims(document);
    }

    private static CoseSign1Message DecodeCose(byte[] document)
    {
        var (message, algorithm, _) = CoseSign1Document.Decode(document, "attestation document");
        if (algorithm != Es384)
            throw Invalid($"attestation document is signed with COSE algorithm {algorithm}, AWS Nitro uses ES384 ({Es384})");
        return message;
    }

    private static X509Certificate2 LoadCertificate(byte[] der, string field, List<X509Certificate2> loaded)
    {
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException e)
        {
            throw Invalid($"attestation document {field} is not a DER X.509 certificate: {e.Message}");
        }
        loaded.Add(certificate);
        return certificate;
    }

    private void CheckChain(X509Certificate2 leaf, IReadOnlyList<byte[]> bundleDer, List<X509Certificate2> bundle)
    {
        if (!bundleDer[0].AsSpan().SequenceEqual(_pinnedRootDer))
            throw Untrusted($"attestation document cabundle[0] ({bundle[0].Subject}, SHA-256 {bundle[0].GetCertHashString(HashAlgorithmName.SHA256)}) is not the pinned AWS Nitro root ({_pinnedRoot.Subject}, SHA-256 {_pinnedRoot.GetCertHashString(HashAlgorithmName.SHA256)})");
        if (leaf.Extensions[Oids.BasicConstraints] is X509BasicConstraintsExtension { CertificateAuthority: true })
            throw Untrusted($"attestation document is signed by a CA certificate ({leaf.Subject}), not an end-entity certificate");
        if (leaf.Extensions[Oids.KeyUsage] is X509KeyUsageExtension ku && !ku.KeyUsages.HasFlag(X509KeyUsageFlags.DigitalSignature))
            throw Untrusted($"attestation document certificate ({leaf.Subject}) may not sign (key usage {ku.KeyUsages})");

        var now = _clock.GetUtcNow();
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(_pinnedRoot);
        chain.ChainPolicy.ExtraStore.AddRange(bundle.Skip(1).ToArray());
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        bool built;
        try
        {
            built = chain.Build(leaf);
        }
        catch (CryptographicException e)
        {
            throw Untrusted($"attestation document certificate chain cannot be built: {e.Message}");
        }
        if (!built)
        {
            var status = string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct());
            throw Untrusted($"attestation document certificate ({leaf.Subject}, {Validity(leaf)}) does not chain to the pinned AWS Nitro root at {now.UtcDateTime:O} ({status})");
        }
        var top = chain.ChainElements[^1].Certificate;
        if (!top.RawData.AsSpan().SequenceEqual(_pinnedRootDer))
            throw Untrusted("attestation document certificate chain ends at a certificate other than the pinned AWS Nitro root");
    }

    private static void CheckSignature(CoseSign1Message message, X509Certificate2 leaf)
    {
        using var key = leaf.GetECDsaPublicKey()
            ?? throw Untrusted($"attestation document certificate ({leaf.Subject}) does not hold an ECDSA key");
        if (key.KeySize != P384KeySize)
            throw Untrusted($"attestation document certificate holds a {key.KeySize}-bit ECDSA key, ES384 needs P-384");
        bool valid;
        try
        {
            valid = message.VerifyEmbedded(key);
        }
        catch (Exception e) when (e is CryptographicException or InvalidOperationException or ArgumentException)
        {
            throw Invalid($"attestation document signature cannot be checked: {e.Message}");
        }
        if (!valid)
            throw Untrusted($"attestation document signature does not verify with the key of its certificate ({leaf.Subject})");
    }

    private NormalisedClaims ToClaims(AwsNitroDocument document)
    {
        var required = new[] { 0, 1, 2 };
        foreach (var i in required)
        {
            if (!document.Pcrs.ContainsKey(i))
                throw Invalid($"attestation document lacks PCR{i}");
        }
        var debug = required.All(i => document.Pcrs[i].AsSpan().IndexOfAnyExcept((byte)0) < 0);
        if (debug && !_options.AllowDebug)
            throw Invalid("attestation document is from an enclave in debug mode (PCR0, PCR1 and PCR2 are zero), whose memory the parent instance can read; debug enclaves are refused by configuration");

        var tests = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i <= MaxNamedPcr; i++)
        {
            if (document.Pcrs.TryGetValue(i, out var pcr))
                tests[$"pcr{i}"] = Convert.ToHexStringLower(pcr);
        }
        tests["module_id"] = document.ModuleId;

        return new NormalisedClaims(
            PlatformTag,
            Simulated: false,
            Measurement: Convert.ToHexStringLower(document.Pcrs[0]),
            PlatformTests: tests,
            ReportData: document.UserData ?? [],
            IssuedAt: document.Timestamp,
            Debug: debug);
    }

    private static string Validity(X509Certificate2 certificate)
    {
        try
        {
            return $"valid {certificate.NotBefore.ToUniversalTime():O} to {certificate.NotAfter.ToUniversalTime():O}";
        }
        catch (CryptographicException)
        {
            return "validity unreadable";
        }
    }

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);

    private static class Oids
    {
        public const string BasicConstraints = "2.5.29.19";
        public const string KeyUsage = "2.5.29.15";
    }
}
