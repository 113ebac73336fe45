using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.AmdSevSnp;

/// <summary>
/// One certificate of AMD's SEV-SNP key hierarchy (ARK, ASK/ASVK, VCEK/VLEK), with the pieces needed to check its
/// RSASSA-PSS signature by hand: .NET's chain builder does not validate RSA-PSS chains everywhere, so the
/// signature over the TBSCertificate is verified with <see cref="RSA.VerifyData(byte[], byte[], HashAlgorithmName, RSASignaturePadding)"/>
/// and validity, issuer names and CA constraints are checked here against the verifier's clock.
/// Every failure is an <see cref="EvidenceException"/> with <see cref="KeyUseRefusal.EvidenceUntrusted"/>.
/// </summary>
internal sealed class AmdCertificate : IDisposable
{
    private const string RsaEncryptionOid = "1.2.840.113549.1.1.1";
    private const string RsaPssOid = "1.2.840.113549.1.1.10";
    private const string Mgf1Oid = "1.2.840.113549.1.1.8";
    private const string Sha384Oid = "2.16.840.1.101.3.4.2.2";
    private const int Sha384Length = 48;

    private readonly byte[] _tbs;
    private readonly byte[] _signature;

    private AmdCertificate(string role, X509Certificate2 certificate, byte[] tbs, byte[] signature)
    {
        Role = role;
        Certificate = certificate;
        _tbs = tbs;
        _signature = signature;
    }

    /// <summary>What the certificate is in the chain, for messages (<c>ARK</c>, <c>ASK</c>, <c>VCEK</c>, …).</summary>
    public string Role { get; }

    /// <summary>The parsed certificate (extensions, names, validity, public key).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The DER encoding.</summary>
    public ReadOnlySpan<byte> RawData => Certificate.RawData;

    /// <summary>
    /// Parses DER. The signature algorithm must be RSASSA-PSS with SHA-384, MGF1-SHA-384, salt 48, trailer 1 (what
    /// AMD uses for every certificate of the hierarchy), both outside and inside the TBSCertificate. The serial
    /// number is not interpreted (AMD's VCEKs carry zero or negative serials).
    /// </summary>
    public static AmdCertificate Parse(ReadOnlySpan<byte> der, string role)
    {
        if (der.IsEmpty)
            throw Untrusted($"the {role} certificate is empty");
        byte[] tbs, signature;
        try
        {
            var reader = new AsnReader(der.ToArray(), AsnEncodingRules.DER);
            var outer = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            tbs = outer.ReadEncodedValue().ToArray();
            var algorithm = outer.ReadEncodedValue();
            signature = outer.ReadBitString(out var unusedBits);
            outer.ThrowIfNotEmpty();
            if (unusedBits != 0)
                throw Untrusted($"the {role} certificate's signature is not a whole number of bytes");
            CheckPssSha384(algorithm, role);

            var tbsReader = new AsnReader(tbs, AsnEncodingRules.DER).ReadSequence();
            if (tbsReader.PeekTag().HasSameClassAndValue(new Asn1Tag(TagClass.ContextSpecific, 0)))
                tbsReader.ReadEncodedValue();
            tbsReader.ReadIntegerBytes(); // serial: any sign accepted
            if (!tbsReader.ReadEncodedValue().Span.SequenceEqual(algorithm.Span))
                throw Untrusted($"the {role} certificate's inner and outer signature algorithms differ");
        }
        catch (Exception e) when (e is AsnContentException or CryptographicException)
        {
            throw Untrusted($"the {role} certificate is not valid DER: {e.Message}");
        }

        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadCertificate(der);
        }
        catch (CryptographicException e)
        {
            throw Untrusted($"the {role} certificate cannot be read: {e.Message}");
        }
        if (!certificate.RawData.AsSpan().SequenceEqual(der))
        {
            certificate.Dispose();
            throw Untrusted($"the {role} certificate has bytes beyond its DER encoding");
        }
        return new AmdCertificate(role, certificate, tbs, signature);
    }

    /// <summary>True when subject and issuer names are the same.</summary>
    public bool IsSelfIssued => Certificate.SubjectName.RawData.AsSpan().SequenceEqual(Certificate.IssuerName.RawData);

    /// <summary>The subject common name, or an empty string.</summary>
    public string CommonName => Certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false) ?? "";

    /// <summary>Checks that the certificate is valid at <paramref name="now"/>.</summary>
    public void CheckValidAt(DateTimeOffset now)
    {
        var notBefore = new DateTimeOffset(Certificate.NotBefore.ToUniversalTime(), TimeSpan.Zero);
        var notAfter = new DateTimeOffset(Certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        if (now < notBefore)
            throw Untrusted($"the {Role} certificate is not valid before {notBefore:O} (now {now.UtcDateTime:O})");
        if (now > notAfter)
            throw Untrusted($"the {Role} certificate expired at {notAfter:O} (now {now.UtcDateTime:O})");
    }

    /// <summary>Checks that the certificate is a CA certificate (basic constraints CA, and key usage allows certificate signing when present).</summary>
    public void CheckIsCa()
    {
        var basic = Certificate.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault();
        if (basic is null || !basic.CertificateAuthority)
            throw Untrusted($"the {Role} certificate is not a CA certificate");
        var usage = Certificate.Extensions.OfType<X509KeyUsageExtension>().FirstOrDefault();
        if (usage is not null && (usage.KeyUsages & X509KeyUsageFlags.KeyCertSign) == 0)
            throw Untrusted($"the {Role} certificate may not sign certificates");
    }

    /// <summary>
    /// Checks that <paramref name="issuer"/> issued this certificate: names chain, the issuer is a CA, and the
    /// RSASSA-PSS signature over the TBSCertificate verifies with the issuer's RSA key.
    /// </summary>
    public void CheckIssuedBy(AmdCertificate issuer)
    {
        if (!Certificate.IssuerName.RawData.AsSpan().SequenceEqual(issuer.Certificate.SubjectName.RawData))
            throw Untrusted($"the {Role} certificate names issuer '{Certificate.Issuer}', not the {issuer.Role} '{issuer.Certificate.Subject}'");
        issuer.CheckIsCa();
        using var key = issuer.RsaPublicKey();
        bool valid;
        try
        {
            valid = key.VerifyData(_tbs, _signature, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        }
        catch (CryptographicException)
        {
            valid = false;
        }
        if (!valid)
            throw Untrusted($"the {Role} certificate's signature does not verify with the {issuer.Role} key");
    }

    /// <summary>The subject's RSA public key (rsaEncryption or id-RSASSA-PSS key), at least 2048 bits.</summary>
    public RSA RsaPublicKey()
    {
        var algorithm = Certificate.PublicKey.Oid.Value;
        if (algorithm is not (RsaEncryptionOid or RsaPssOid))
            throw Untrusted($"the {Role} certificate does not hold an RSA key");
        var rsa = RSA.Create();
        try
        {
            rsa.ImportRSAPublicKey(Certificate.PublicKey.EncodedKeyValue.RawData, out var read);
            if (read != Certificate.PublicKey.EncodedKeyValue.RawData.Length)
                throw Untrusted($"the {Role} certificate's RSA key has trailing bytes");
            if (rsa.KeySize < 2048)
                throw Untrusted($"the {Role} certificate's RSA key has only {rsa.KeySize} bits");
            return rsa;
        }
        catch (CryptographicException e)
        {
            rsa.Dispose();
            throw Untrusted($"the {Role} certificate's RSA key cannot be read: {e.Message}");
        }
        catch (EvidenceException)
        {
            rsa.Dispose();
            throw;
        }
    }

    /// <summary>The subject's ECDSA P-384 public key.</summary>
    public ECDsa P384PublicKey()
    {
        ECDsa? key;
        try
        {
            key = Certificate.GetECDsaPublicKey();
        }
        catch (CryptographicException e)
        {
            throw Untrusted($"the {Role} certificate's public key cannot be read: {e.Message}");
        }
        if (key is null)
            throw Untrusted($"the {Role} certificate does not hold an ECDSA key");
        var curve = key.ExportParameters(false).Curve;
        if (key.KeySize != 384 || !curve.IsNamed || curve.Oid.Value != "1.3.132.0.34")
        {
            key.Dispose();
            throw Untrusted($"the {Role} certificate's key is not on P-384");
        }
        return key;
    }

    /// <summary>The value (inside the extnValue OCTET STRING) of the extension <paramref name="oid"/>, or null; a repeated extension is refused.</summary>
    public byte[]? Extension(string oid)
    {
        byte[]? found = null;
        foreach (var ext in Certificate.Extensions)
        {
            if (ext.Oid?.Value != oid)
                continue;
            if (found is not null)
                throw Untrusted($"the {Role} certificate has extension {oid} twice");
            found = ext.RawData;
        }
        return found;
    }

    /// <inheritdoc />
    public void Dispose() => Certificate.Dispose();

    private static void CheckPssSha384(ReadOnlyMemory<byte> algorithmIdentifier, string role)
    {
        var seq = new AsnReader(algorithmIdentifier, AsnEncodingRules.DER).ReadSequence();
        var oid = seq.ReadObjectIdentifier();
        if (oid != RsaPssOid)
            throw Untrusted($"the {role} certificate is signed with {oid}, not RSASSA-PSS");
        // RSASSA-PSS-params ::= SEQUENCE { [0] hash DEFAULT sha1, [1] mgf DEFAULT mgf1SHA1, [2] salt DEFAULT 20, [3] trailer DEFAULT 1 }
        var p = seq.ReadSequence();
        seq.ThrowIfNotEmpty();
        string? hash = null, mgfHash = null;
        var salt = 20;
        var trailer = 1;
        if (p.HasData && p.PeekTag().HasSameClassAndValue(Context(0)))
            hash = ReadHashAlgorithm(p.ReadSequence(Context(0)));
        if (p.HasData && p.PeekTag().HasSameClassAndValue(Context(1)))
        {
            var mgf = p.ReadSequence(Context(1)).ReadSequence();
            var mgfOid = mgf.ReadObjectIdentifier();
            if (mgfOid != Mgf1Oid)
                throw Untrusted($"the {role} certificate's PSS mask generation is {mgfOid}, not MGF1");
            mgfHash = ReadAlgorithmOid(mgf.ReadSequence());
            mgf.ThrowIfNotEmpty();
        }
        if (p.HasData && p.PeekTag().HasSameClassAndValue(Context(2)))
            salt = ReadSmallInt(p.ReadSequence(Context(2)));
        if (p.HasData && p.PeekTag().HasSameClassAndValue(Context(3)))
            trailer = ReadSmallInt(p.ReadSequence(Context(3)));
        p.ThrowIfNotEmpty();
        if (hash != Sha384Oid || mgfHash != Sha384Oid || salt != Sha384Length || trailer != 1)
            throw Untrusted($"the {role} certificate's RSASSA-PSS parameters are not SHA-384, MGF1-SHA-384, salt 48");
    }

    private static string ReadHashAlgorithm(AsnReader explicitTag)
    {
        var oid = ReadAlgorithmOid(explicitTag.ReadSequence());
        explicitTag.ThrowIfNotEmpty();
        return oid;
    }

    // AlgorithmIdentifier with absent or NULL parameters.
    private static string ReadAlgorithmOid(AsnReader algorithm)
    {
        var oid = algorithm.ReadObjectIdentifier();
        if (algorithm.HasData)
            algorithm.ReadNull();
        algorithm.ThrowIfNotEmpty();
        return oid;
    }

    private static int ReadSmallInt(AsnReader explicitTag)
    {
        if (!explicitTag.TryReadInt32(out var value))
            throw new AsnContentException("integer out of range");
        explicitTag.ThrowIfNotEmpty();
        return value;
    }

    private static Asn1Tag Context(int n) => new(TagClass.ContextSpecific, n, isConstructed: true);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);
}
