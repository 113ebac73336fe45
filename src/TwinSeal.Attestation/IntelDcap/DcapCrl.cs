using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.IntelDcap;

/// <summary>
/// An X.509 CRL (RFC 5280 §5) as Intel's PCS issues them (Intel SGX Root CA CRL, PCK Platform/Processor CA CRL):
/// ECDSA with SHA-256, nextUpdate present. Parsed with <see cref="AsnReader"/>; the signature is checked against the
/// issuing certificate by <see cref="Check"/>.
/// </summary>
internal sealed class DcapCrl
{
    private const string EcdsaWithSha256 = "1.2.840.10045.4.3.2";
    private readonly HashSet<string> _revoked;

    private DcapCrl(string name, byte[] tbs, byte[] issuer, byte[] signature, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, HashSet<string> revoked)
    {
        Name = name;
        Tbs = tbs;
        Issuer = issuer;
        Signature = signature;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        _revoked = revoked;
    }

    public string Name { get; }

    public byte[] Tbs { get; }

    public byte[] Issuer { get; }

    public byte[] Signature { get; }

    public DateTimeOffset ThisUpdate { get; }

    public DateTimeOffset NextUpdate { get; }

    public int Count => _revoked.Count;

    /// <summary>Parses a DER CRL; throws <see cref="EvidenceException"/> (invalid) naming <paramref name="name"/>.</summary>
    public static DcapCrl Parse(byte[] der, string name)
    {
        try
        {
            var outer = new AsnReader(der, AsnEncodingRules.DER);
            var certList = outer.ReadSequence();
            outer.ThrowIfNotEmpty();
            var tbsBytes = certList.PeekEncodedValue().ToArray();
            var tbs = certList.ReadSequence();
            var outerAlg = ReadAlgorithm(certList);
            var signature = certList.ReadBitString(out var unused);
            certList.ThrowIfNotEmpty();
            if (unused != 0)
                throw Invalid($"{name} signature bit string has {unused} unused bits");

            if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
            {
                if (!tbs.TryReadInt32(out var version) || version != 1)
                    throw Invalid($"{name} is not a version 2 CRL");
            }
            var innerAlg = ReadAlgorithm(tbs);
            if (innerAlg != outerAlg)
                throw Invalid($"{name} names two different signature algorithms");
            if (innerAlg != EcdsaWithSha256)
                throw Invalid($"{name} is signed with {innerAlg}, only ecdsa-with-SHA256 is accepted");
            var issuer = tbs.ReadEncodedValue().ToArray();
            var thisUpdate = ReadTime(tbs);
            if (!tbs.HasData || !IsTime(tbs.PeekTag()))
                throw Invalid($"{name} has no nextUpdate");
            var nextUpdate = ReadTime(tbs);
            var revoked = new HashSet<string>(StringComparer.Ordinal);
            if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
            {
                var entries = tbs.ReadSequence();
                while (entries.HasData)
                {
                    var entry = entries.ReadSequence();
                    revoked.Add(SerialKey(entry.ReadIntegerBytes().Span));
                    ReadTime(entry);
                    if (entry.HasData)
                        entry.ReadSequence(); // crlEntryExtensions
                    entry.ThrowIfNotEmpty();
                }
            }
            if (tbs.HasData)
                tbs.ReadEncodedValue(); // [0] crlExtensions
            tbs.ThrowIfNotEmpty();
            return new DcapCrl(name, tbsBytes, issuer, signature, thisUpdate, nextUpdate, revoked);
        }
        catch (AsnContentException e)
        {
            throw Invalid($"{name} is not a DER CRL: {e.Message}");
        }
    }

    /// <summary>
    /// Checks that <paramref name="issuer"/> issued and signed this CRL and that it is current at <paramref name="now"/>;
    /// throws <see cref="EvidenceException"/> (untrusted) otherwise.
    /// </summary>
    public void Check(X509Certificate2 issuer, DateTimeOffset now)
    {
        if (!Issuer.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
            throw Untrusted($"{Name} is issued by another CA than '{issuer.Subject}'");
        using var key = issuer.GetECDsaPublicKey()
            ?? throw Untrusted($"{Name} issuer '{issuer.Subject}' has no ECDSA key");
        bool valid;
        try
        {
            valid = key.VerifyData(Tbs, Signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);
        }
        catch (CryptographicException)
        {
            valid = false;
        }
        if (!valid)
            throw Untrusted($"{Name} signature does not verify with the key of '{issuer.Subject}'");
        if (now < ThisUpdate)
            throw Untrusted($"{Name} was issued at {ThisUpdate:O}, after the verification time {now:O}");
        if (now > NextUpdate)
            throw Untrusted($"{Name} expired at {NextUpdate:O} (verification time {now:O})");
    }

    /// <summary>True when the certificate's serial number is on this CRL.</summary>
    public bool IsRevoked(X509Certificate2 certificate) => _revoked.Contains(SerialKey(certificate.SerialNumberBytes.Span));

    private static string SerialKey(ReadOnlySpan<byte> serial)
    {
        // Compare magnitudes: ignore the sign-padding zero bytes DER adds to positive integers.
        var start = serial.IndexOfAnyExcept((byte)0);
        return start < 0 ? "00" : Convert.ToHexStringLower(serial[start..]);
    }

    private static string ReadAlgorithm(AsnReader reader)
    {
        var alg = reader.ReadSequence();
        var oid = alg.ReadObjectIdentifier();
        if (alg.HasData)
            alg.ReadEncodedValue(); // parameters (absent for ECDSA, tolerated)
        alg.ThrowIfNotEmpty();
        return oid;
    }

    private static bool IsTime(Asn1Tag tag)
        => tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader)
        => reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();

    private static EvidenceException Invalid(string message) => new(KeyUseRefusal.EvidenceInvalid, message);

    private static EvidenceException Untrusted(string message) => new(KeyUseRefusal.EvidenceUntrusted, message);
}
