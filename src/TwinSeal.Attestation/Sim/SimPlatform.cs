using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TwinSeal.Attestation.Sim;

/// <summary>
/// SIMULATION. The certificate authority of the simulated TEE platform: it stands in for the hardware vendor's
/// root (AMD ARK, Intel SGX Root CA, AWS Nitro root). A KMS that trusts its certificate accepts evidence from
/// every simulated device it provisioned; a production KMS does not trust it at all.
/// </summary>
public static class SimPlatform
{
    /// <summary>File name of the root certificate (PEM) that a KMS is configured to trust.</summary>
    public const string RootCertificateFile = "sim-platform-root.crt.pem";
    private const string RootKeyFile = "sim-platform-root.key.pem";
    /// <summary>File name of a device's attestation certificate.</summary>
    public const string DeviceCertificateFile = "attestation.crt.pem";
    /// <summary>File name of a device's attestation private key.</summary>
    public const string DeviceKeyFile = "attestation.key.pem";

    /// <summary>Creates the simulated platform root in <paramref name="dir"/>, unless it is already there.</summary>
    public static string EnsureRoot(string dir)
    {
        Directory.CreateDirectory(dir);
        var certPath = Path.Combine(dir, RootCertificateFile);
        if (File.Exists(certPath)) return certPath;
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest("CN=TwinSeal SIMULATED TEE platform root (not hardware)", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
        SecretFile.WriteAllText(Path.Combine(dir, RootKeyFile), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certPath, cert.ExportCertificatePem());
        return certPath;
    }

    /// <summary>Provisions a simulated device: an attestation key and a certificate for it signed by the root in <paramref name="rootDir"/>.</summary>
    public static void ProvisionDevice(string rootDir, string deviceDir, string deviceName)
    {
        Directory.CreateDirectory(deviceDir);
        if (File.Exists(Path.Combine(deviceDir, DeviceCertificateFile))) return;
        using var root = X509Certificate2.CreateFromPemFile(Path.Combine(rootDir, RootCertificateFile), Path.Combine(rootDir, RootKeyFile));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN=TwinSeal SIMULATED attestation key, OU={deviceName}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var cert = req.Create(root, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(2), serial);
        SecretFile.WriteAllText(Path.Combine(deviceDir, DeviceKeyFile), key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(Path.Combine(deviceDir, DeviceCertificateFile), cert.ExportCertificatePem());
    }
}

/// <summary>Writes files that hold secrets with mode 0600 from the start, so there is no window where others can read them.</summary>
public static class SecretFile
{
    /// <summary>Creates or replaces <paramref name="path"/> with owner-only permissions and writes <paramref name="text"/>.</summary>
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Creates or replaces <paramref name="path"/> with owner-only permissions and writes <paramref name="bytes"/>, flushed to disk.</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var tmp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var fs = new FileStream(tmp, options))
        {
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>Reads certificates from PEM files.</summary>
public static class PemCertificate
{
    /// <summary>Loads the first CERTIFICATE block of a PEM file; throws <see cref="InvalidOperationException"/> naming the file if there is none.</summary>
    public static X509Certificate2 Load(string path)
    {
        var text = File.ReadAllText(path);
        var at = text.AsSpan();
        while (PemEncoding.TryFind(at, out var fields))
        {
            if (at[fields.Label].SequenceEqual("CERTIFICATE"))
                return X509CertificateLoader.LoadCertificate(Convert.FromBase64String(at[fields.Base64Data].ToString()));
            at = at[fields.Location.End.Value..];
        }
        throw new InvalidOperationException($"'{path}' holds no PEM certificate.");
    }
}
