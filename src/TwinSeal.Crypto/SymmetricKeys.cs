using System.Security.Cryptography;

namespace TwinSeal.Crypto;

/// <summary>
/// An AES-256 key held in a zeroing buffer. Subtypes exist so a data key cannot be passed where a KEK
/// or the master key is expected.
/// </summary>
public abstract class Aes256Key : IDisposable
{
    /// <summary>Key length in bytes.</summary>
    public const int Length = 32;
    /// <summary>AES-GCM nonce length in bytes.</summary>
    public const int NonceLength = 12;
    /// <summary>AES-GCM tag length in bytes.</summary>
    public const int TagLength = 16;

    private readonly SecretBytes _material;

    /// <summary>Takes ownership of <paramref name="material"/>.</summary>
    protected Aes256Key(SecretBytes material)
    {
        if (material.Length != Length)
        {
            material.Dispose();
            throw new CryptographicException($"An AES-256 key is {Length} bytes.");
        }
        _material = material;
    }

    /// <summary>The raw key; never leaves this assembly, so every use of a key is one of the typed operations here.</summary>
    internal ReadOnlySpan<byte> Material => _material.Span;

    /// <summary>AES-256-GCM encryption: returns nonce ‖ ciphertext ‖ tag.</summary>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var output = new byte[NonceLength + plaintext.Length + TagLength];
        var nonce = output.AsSpan(0, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(Material, TagLength);
        gcm.Encrypt(nonce, plaintext, output.AsSpan(NonceLength, plaintext.Length), output.AsSpan(NonceLength + plaintext.Length), associatedData);
        return output;
    }

    /// <summary>Decrypts nonce ‖ ciphertext ‖ tag into a zeroing buffer; throws <see cref="CryptographicException"/> if it does not authenticate.</summary>
    public SecretBytes OpenSecret(ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associatedData)
    {
        if (sealedBytes.Length <= NonceLength + TagLength)
            throw new CryptographicException("Sealed value is too short.");
        var ctLength = sealedBytes.Length - NonceLength - TagLength;
        var plaintext = SecretBytes.Allocate(ctLength);
        try
        {
            using var gcm = new AesGcm(Material, TagLength);
            gcm.Decrypt(sealedBytes[..NonceLength], sealedBytes.Slice(NonceLength, ctLength), sealedBytes[^TagLength..], plaintext.Span, associatedData);
            return plaintext;
        }
        catch
        {
            plaintext.Dispose();
            throw;
        }
    }

    /// <summary>Zeroes the key.</summary>
    public void Dispose()
    {
        _material.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The KMS master key of a file-based root (see <see cref="MasterKeyRoot"/>): seals every KEK at rest.</summary>
public sealed class MasterKey : Aes256Key
{
    /// <summary>Takes ownership of the material.</summary>
    public MasterKey(SecretBytes material) : base(material) { }
    /// <summary>A fresh random master key.</summary>
    public static MasterKey Generate() => new(SecretBytes.Random(Length));
}

/// <summary>A key-encryption key: wraps one key's data key versions.</summary>
public sealed class KeyEncryptionKey : Aes256Key
{
    /// <summary>Takes ownership of the material.</summary>
    public KeyEncryptionKey(SecretBytes material) : base(material) { }
    /// <summary>A fresh random KEK.</summary>
    public static KeyEncryptionKey Generate() => new(SecretBytes.Random(Length));

    /// <summary>Wraps a data key as AES-256-GCM(KEK, dataKey, aad = keyId ‖ version).</summary>
    public byte[] WrapDataKey(DataKey dataKey, string keyId, int version) => Seal(dataKey.Material, Aad.ForDataKey(keyId, version));

    /// <summary>Unwraps a data key; throws if the wrapped bytes, key id or version do not match.</summary>
    public DataKey UnwrapDataKey(ReadOnlySpan<byte> wrapped, string keyId, int version) => new(OpenSecret(wrapped, Aad.ForDataKey(keyId, version)));
}

/// <summary>The AES-256 key that encrypts the parties' target data.</summary>
public sealed class DataKey : Aes256Key
{
    /// <summary>Takes ownership of the material.</summary>
    public DataKey(SecretBytes material) : base(material) { }
    /// <summary>A fresh random data key.</summary>
    public static DataKey Generate() => new(SecretBytes.Random(Length));
}

internal static class Aad
{
    public static byte[] ForKek(string keyId) => System.Text.Encoding.UTF8.GetBytes("twinseal/kek/v1\0" + keyId);

    public static byte[] ForDataKey(string keyId, int version)
    {
        var id = System.Text.Encoding.UTF8.GetBytes("twinseal/data-key/v1\0" + keyId + "\0");
        var aad = new byte[id.Length + 4];
        id.CopyTo(aad, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(id.Length), version);
        return aad;
    }
}
