using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TwinSeal.Crypto;

/// <summary>
/// A service's self-signed TLS certificate for loopback, generated on first start and kept in its data directory.
/// Clients pin its SHA-256 fingerprint instead of trusting a CA, so no "accept any certificate" is ever needed.
/// </summary>
public static class TlsIdentity
{
    private const string FileName = "tls.pfx";

    /// <summary>Loads the identity from <paramref name="dataDirectory"/>, creating it on first start.</summary>
    public static X509Certificate2 LoadOrCreate(string dataDirectory, string subject)
    {
        var path = Path.Combine(dataDirectory, FileName);
        if (File.Exists(path))
            return X509CertificateLoader.LoadPkcs12FromFile(path, password: null, X509KeyStorageFlags.EphemeralKeySet);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(2));
        var pfx = cert.Export(X509ContentType.Pkcs12);
        var tmp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(tmp, options))
        {
            fs.Write(pfx);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
        CryptographicOperations.ZeroMemory(pfx);
        return X509CertificateLoader.LoadPkcs12FromFile(path, password: null, X509KeyStorageFlags.EphemeralKeySet);
    }

    /// <summary>The pinned fingerprint: lower-case hex SHA-256 of the certificate DER.</summary>
    public static string Fingerprint(X509Certificate2 certificate) => Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));
}
