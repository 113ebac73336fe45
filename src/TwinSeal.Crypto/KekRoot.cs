namespace TwinSeal.Crypto;

/// <summary>
/// The root of the KMS key hierarchy: seals every KEK at rest, bound to its key id. Implementations keep the root key
/// in a file (<see cref="MasterKeyRoot"/>) or in an HSM, where it never leaves the token.
/// </summary>
/// <remarks>
/// The KEK's plaintext reaches an implementation only through the protected <see cref="SealMaterial"/>, so callers
/// still handle KEKs as <see cref="KeyEncryptionKey"/> objects and never as bytes.
/// </remarks>
public abstract class KekRoot : IDisposable
{
    /// <summary>A short description for logs and health output, e.g. "master key file" or "PKCS#11 token 'twinseal'".</summary>
    public abstract string Description { get; }

    /// <summary>Seals a KEK for storage, bound to <paramref name="keyId"/>.</summary>
    public byte[] SealKek(KeyEncryptionKey kek, string keyId) => SealMaterial(kek.Material, Aad.ForKek(keyId));

    /// <summary>Unseals a stored KEK; throws <see cref="System.Security.Cryptography.CryptographicException"/> if the bytes or key id were tampered with.</summary>
    public KeyEncryptionKey UnsealKek(ReadOnlySpan<byte> sealedKek, string keyId) => new(OpenMaterial(sealedKek, Aad.ForKek(keyId)));

    /// <summary>Encrypts and authenticates <paramref name="kek"/> with <paramref name="associatedData"/> under the root key.</summary>
    protected abstract byte[] SealMaterial(ReadOnlySpan<byte> kek, byte[] associatedData);

    /// <summary>Reverses <see cref="SealMaterial"/> into a zeroing buffer; throws <see cref="System.Security.Cryptography.CryptographicException"/> if it does not authenticate.</summary>
    protected abstract SecretBytes OpenMaterial(ReadOnlySpan<byte> sealedKek, byte[] associatedData);

    /// <summary>Releases the root key (zeroes it, or closes the token session).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases resources.</summary>
    protected abstract void Dispose(bool disposing);
}

/// <summary>A <see cref="KekRoot"/> whose root is a <see cref="MasterKey"/> held in process memory (loaded from the master key file).</summary>
public sealed class MasterKeyRoot(MasterKey master) : KekRoot
{
    /// <inheritdoc />
    public override string Description => "master key file";

    /// <inheritdoc />
    protected override byte[] SealMaterial(ReadOnlySpan<byte> kek, byte[] associatedData) => master.Seal(kek, associatedData);

    /// <inheritdoc />
    protected override SecretBytes OpenMaterial(ReadOnlySpan<byte> sealedKek, byte[] associatedData) => master.OpenSecret(sealedKek, associatedData);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) master.Dispose();
    }
}
