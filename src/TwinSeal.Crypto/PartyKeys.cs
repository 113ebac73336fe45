using System.Security.Cryptography;

namespace TwinSeal.Crypto;

/// <summary>A party's long-term ECDSA P-256 signing key, made by <c>twinseal party init</c>.</summary>
public sealed class PartySigningKey : IDisposable
{
    private readonly ECDsa _key;

    private PartySigningKey(ECDsa key) => _key = key;

    /// <summary>Generates a new key pair.</summary>
    public static PartySigningKey Generate() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>Loads a key from PKCS#8 PEM; throws <see cref="CryptographicException"/> for anything but a P-256 private key.</summary>
    public static PartySigningKey FromPem(string pem)
    {
        var key = ECDsa.Create();
        key.ImportFromPem(pem);
        if (key.KeySize != 256)
        {
            key.Dispose();
            throw new CryptographicException("A party key must be ECDSA P-256.");
        }
        return new PartySigningKey(key);
    }

    /// <summary>PKCS#8 PEM of the private key, for the party's 0600 key file.</summary>
    public string ExportPem() => _key.ExportPkcs8PrivateKeyPem();

    /// <summary>The public half.</summary>
    public PartyPublicKey PublicKey => PartyPublicKey.FromSubjectPublicKeyInfo(_key.ExportSubjectPublicKeyInfo());

    /// <summary>Signs with ECDSA P-256/SHA-256, IEEE P1363 encoding.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data) => _key.SignData(data, HashAlgorithmName.SHA256);

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}

/// <summary>A party's long-term public key, as the KMS and the other party know it.</summary>
public sealed class PartyPublicKey
{
    private readonly byte[] _spki;

    private PartyPublicKey(byte[] spki, string fingerprint)
    {
        _spki = spki;
        Fingerprint = fingerprint;
    }

    /// <summary>Hex SHA-256 of the SubjectPublicKeyInfo.</summary>
    public string Fingerprint { get; }

    /// <summary>SubjectPublicKeyInfo DER.</summary>
    public byte[] SubjectPublicKeyInfo => (byte[])_spki.Clone();

    /// <summary>Parses and validates a SubjectPublicKeyInfo; throws <see cref="CryptographicException"/> unless it is a P-256 key.</summary>
    public static PartyPublicKey FromSubjectPublicKeyInfo(ReadOnlySpan<byte> spki)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportSubjectPublicKeyInfo(spki, out var read);
            if (read != spki.Length || key.KeySize != 256)
                throw new CryptographicException("A party public key must be a P-256 SubjectPublicKeyInfo.");
        }
        catch
        {
            key.Dispose();
            throw;
        }
        var copy = spki.ToArray();
        var parsed = new PartyPublicKey(copy, Convert.ToHexStringLower(SHA256.HashData(copy)));
        parsed._imported.Add(key);
        return parsed;
    }

    /// <summary>Verifies an ECDSA P-256/SHA-256 P1363 signature. Safe to call from many threads at once.</summary>
    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        // Importing (and so validating) the point costs several times the verification itself, and a KMS checks the
        // same few parties' signatures on every request: keep imported keys for reuse, one per concurrent caller,
        // since an ECDsa instance is not documented as safe for concurrent use.
        if (!_imported.TryTake(out var key))
        {
            key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(_spki, out _);
        }
        try
        {
            return key.VerifyData(data, signature, HashAlgorithmName.SHA256);
        }
        finally
        {
            _imported.Add(key);
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentBag<ECDsa> _imported = [];
}

/// <summary>
/// The isolated area's ephemeral P-256 key pair for one run: its public half is bound into the evidence,
/// and the KMS wraps the data key to it. The private half never leaves the enclave process.
/// </summary>
public sealed class EphemeralKeyPair : IDisposable
{
    private readonly ECDiffieHellman _key = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>SEC1 uncompressed public key (65 bytes).</summary>
    public byte[] PublicKey => Hpke.ExportPublicKey(_key);

    /// <summary>Opens a data key released by the KMS (HPKE base mode, AES-256-GCM). Throws <see cref="CryptographicException"/> if it was not wrapped to this key with this binding.</summary>
    public DataKey OpenDataKey(ReadOnlySpan<byte> enc, ReadOnlySpan<byte> wrappedKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad)
        => new(Hpke.Open(_key, enc, info, aad, wrappedKey));

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}

/// <summary>Wraps a data key to an attested enclave's ephemeral public key.</summary>
public static class DataKeyRelease
{
    /// <summary>HPKE-seals the data key to <paramref name="enclavePublicKey"/> (SEC1 uncompressed P-256).</summary>
    public static HpkeSealed WrapToEnclave(DataKey dataKey, ReadOnlySpan<byte> enclavePublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad)
        => Hpke.Seal(enclavePublicKey, info, aad, dataKey.Material);
}
