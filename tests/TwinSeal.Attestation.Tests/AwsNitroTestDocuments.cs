using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.Cose;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>
/// A stand-in AWS Nitro PKI (root → intermediate → leaf, all P-384) that signs synthetic attestation documents, for
/// behaviour the one real sample cannot show (debug mode, a 64-byte binding in user_data, a tagged message).
/// </summary>
internal sealed class AwsNitroTestPki : IDisposable
{
    public static readonly DateTimeOffset Now = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly ECDsa _leafKey;

    public AwsNitroTestPki()
    {
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Root = CreateCa("CN=test.nitro-enclaves root", rootKey, issuer: null, issuerKey: null);
        using var interKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        Intermediate = CreateCa("CN=test.nitro-enclaves intermediate", interKey, Root, rootKey);
        _leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var req = new CertificateRequest("CN=test.nitro-enclaves leaf", _leafKey, HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        using var issuer = Intermediate.CopyWithPrivateKey(interKey);
        Leaf = req.Create(issuer, Now.AddHours(-1), Now.AddHours(2), [0x01, 0x02]);
    }

    public X509Certificate2 Root { get; }
    public X509Certificate2 Intermediate { get; }
    public X509Certificate2 Leaf { get; }

    public static byte[] Pcr(byte fill) => Enumerable.Repeat(fill, 48).ToArray();

    /// <summary>Encodes and signs a document; <paramref name="caBundleRoot"/> replaces cabundle[0] when given.</summary>
    public Evidence Sign(IReadOnlyDictionary<int, byte[]> pcrs, byte[]? userData, X509Certificate2? caBundleRoot = null)
    {
        var w = new CborWriter();
        w.WriteStartMap(9);
        w.WriteTextString("module_id"); w.WriteTextString("i-0123456789abcdef0-enc0123456789abcdef");
        w.WriteTextString("digest"); w.WriteTextString("SHA384");
        w.WriteTextString("timestamp"); w.WriteUInt64((ulong)Now.ToUnixTimeMilliseconds());
        w.WriteTextString("pcrs");
        w.WriteStartMap(pcrs.Count);
        foreach (var (i, v) in pcrs)
        {
            w.WriteUInt32((uint)i);
            w.WriteByteString(v);
        }
        w.WriteEndMap();
        w.WriteTextString("certificate"); w.WriteByteString(Leaf.RawData);
        w.WriteTextString("cabundle");
        w.WriteStartArray(2);
        w.WriteByteString((caBundleRoot ?? Root).RawData);
        w.WriteByteString(Intermediate.RawData);
        w.WriteEndArray();
        w.WriteTextString("public_key"); w.WriteNull();
        w.WriteTextString("user_data");
        if (userData is null) w.WriteNull(); else w.WriteByteString(userData);
        w.WriteTextString("nonce"); w.WriteNull();
        w.WriteEndMap();
        var signer = new CoseSigner(_leafKey, HashAlgorithmName.SHA384);
        return new Evidence("aws-nitro", CoseSign1Message.SignEmbedded(w.Encode(), signer));
    }

    public void Dispose()
    {
        _leafKey.Dispose();
        Leaf.Dispose();
        Intermediate.Dispose();
        Root.Dispose();
    }

    private static X509Certificate2 CreateCa(string subject, ECDsa key, X509Certificate2? issuer, ECDsa? issuerKey)
    {
        var req = new CertificateRequest(subject, key, HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        if (issuer is null)
            return req.CreateSelfSigned(Now.AddYears(-1), Now.AddYears(10));
        if (issuer.HasPrivateKey)
            return req.Create(issuer, Now.AddDays(-1), Now.AddYears(1), [0x10]);
        using var signer = issuer.CopyWithPrivateKey(issuerKey!);
        return req.Create(signer, Now.AddDays(-1), Now.AddYears(1), [0x10]);
    }
}

/// <summary>A clock that always reads one instant.</summary>
internal sealed class AwsNitroFixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
