using System.Buffers.Binary;
using System.Security.Cryptography;

namespace TwinSeal.Crypto;

/// <summary>
/// The AEAD half of an HPKE suite. The numeric values are the RFC 9180 <c>aead_id</c> registry values,
/// because they go verbatim into the key-schedule <c>suite_id</c>.
/// </summary>
public enum HpkeAead
{
    /// <summary>AES-128-GCM (<c>aead_id</c> 0x0001).</summary>
    Aes128Gcm = 0x0001,

    /// <summary>AES-256-GCM (<c>aead_id</c> 0x0002).</summary>
    Aes256Gcm = 0x0002,
}

/// <summary>The output of a single-shot HPKE seal.</summary>
/// <param name="Enc">The encapsulated key: the sender's ephemeral P-256 public key, SEC1 uncompressed (65 bytes).</param>
/// <param name="Ciphertext">The AEAD ciphertext followed by its 16-byte tag.</param>
public sealed record HpkeSealed(byte[] Enc, byte[] Ciphertext);

/// <summary>
/// HPKE (RFC 9180) in base mode, single shot (sequence number 0), for DHKEM(P-256, HKDF-SHA256) with
/// HKDF-SHA256 and AES-GCM. Every primitive comes from <see cref="System.Security.Cryptography"/>; this
/// class only does the RFC's framing (labels, suite ids, key schedule), so that framing is all that needs review.
/// </summary>
public static class Hpke
{
    // RFC 9180 §7.1: identifiers of the fixed parts of the suite.
    private const ushort KemId = 0x0010; // DHKEM(P-256, HKDF-SHA256)
    private const ushort KdfId = 0x0001; // HKDF-SHA256

    // RFC 9180 §7.1 table: Nsecret, Npk (= Nenc) for DHKEM(P-256); Nh for HKDF-SHA256; Nn, Nt for AES-GCM.
    private const int SharedSecretLength = 32;
    private const int PublicKeyLength = 65;
    private const int CoordinateLength = 32;
    private const int HashLength = 32;
    private const int NonceLength = 12;
    private const int TagLength = 16;

    private const byte ModeBase = 0x00;
    private const byte Sec1Uncompressed = 0x04;

    private const string P256Oid = "1.2.840.10045.3.1.7";

    private static ReadOnlySpan<byte> VersionLabel => "HPKE-v1"u8;

    /// <summary>
    /// Encrypts <paramref name="plaintext"/> to the holder of the private key for <paramref name="recipientPublicKey"/>.
    /// A fresh ephemeral key is generated for every call, so sealing the same input twice gives unrelated outputs.
    /// </summary>
    /// <param name="recipientPublicKey">The recipient's P-256 public key, SEC1 uncompressed (65 bytes, <c>0x04 ‖ X ‖ Y</c>).</param>
    /// <param name="info">Application context bound into the key schedule; the recipient must pass the same bytes.</param>
    /// <param name="aad">Associated data authenticated but not encrypted; the recipient must pass the same bytes.</param>
    /// <param name="plaintext">The message; must not be empty (see <see cref="Open"/>).</param>
    /// <param name="aead">The AEAD; the recipient must use the same one.</param>
    /// <returns>The encapsulated key and the ciphertext (with tag).</returns>
    /// <exception cref="CryptographicException"><paramref name="recipientPublicKey"/> is not a valid uncompressed P-256 point.</exception>
    /// <exception cref="ArgumentException"><paramref name="plaintext"/> is empty or <paramref name="aead"/> is not a defined value.</exception>
    public static HpkeSealed Seal(ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, HpkeAead aead = HpkeAead.Aes256Gcm)
    {
        // Check the cheap argument errors before paying for a key generation.
        var keyLength = KeyLength(aead);
        RequirePlaintext(plaintext);
        using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        return SealCore(ephemeral, recipientPublicKey, info, aad, plaintext, aead, keyLength);
    }

    /// <summary>
    /// <see cref="Seal(ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, HpkeAead)"/> with
    /// a caller-chosen ephemeral key. It exists only so the RFC 9180 test vectors (which fix <c>skEm</c>) can be
    /// reproduced; reusing an ephemeral key in production would reuse the AEAD key and nonce.
    /// </summary>
    internal static HpkeSealed Seal(ECDiffieHellman ephemeral, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, HpkeAead aead)
    {
        ArgumentNullException.ThrowIfNull(ephemeral);
        var keyLength = KeyLength(aead);
        RequirePlaintext(plaintext);
        return SealCore(ephemeral, recipientPublicKey, info, aad, plaintext, aead, keyLength);
    }

    /// <summary>
    /// Decrypts a message sealed to <paramref name="recipient"/>. The plaintext is returned in a pinned buffer that
    /// is zeroed on dispose, because HPKE is used here to carry key material.
    /// </summary>
    /// <param name="recipient">The recipient's P-256 key pair (must hold the private key).</param>
    /// <param name="enc">The encapsulated key from <see cref="HpkeSealed.Enc"/>.</param>
    /// <param name="info">The same application context the sender used.</param>
    /// <param name="aad">The same associated data the sender used.</param>
    /// <param name="ciphertext">The ciphertext with tag from <see cref="HpkeSealed.Ciphertext"/>.</param>
    /// <param name="aead">The same AEAD the sender used.</param>
    /// <returns>The plaintext; the caller disposes it.</returns>
    /// <exception cref="CryptographicException">
    /// <paramref name="enc"/> is not a valid P-256 point, the ciphertext is too short to hold a tag and a non-empty
    /// plaintext, or the ciphertext does not authenticate (wrong key, or any of enc, info, aad, ciphertext changed).
    /// </exception>
    /// <exception cref="ArgumentException"><paramref name="recipient"/> is not a P-256 key or <paramref name="aead"/> is not a defined value.</exception>
    public static SecretBytes Open(ECDiffieHellman recipient, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> ciphertext, HpkeAead aead = HpkeAead.Aes256Gcm)
    {
        ArgumentNullException.ThrowIfNull(recipient);
        var keyLength = KeyLength(aead);
        // SecretBytes cannot be empty, so an empty plaintext (ciphertext = tag only) is refused rather than
        // half-supported; Seal refuses to produce one for the same reason.
        if (ciphertext.Length <= TagLength)
            throw new CryptographicException($"HPKE ciphertext must be longer than the {TagLength}-byte AEAD tag.");

        using var sharedSecret = Decap(recipient, enc);
        using var key = SecretBytes.Allocate(keyLength);
        Span<byte> nonce = stackalloc byte[NonceLength];
        KeySchedule(sharedSecret.Span, info, aead, key.Span, nonce);

        var plaintextLength = ciphertext.Length - TagLength;
        var plaintext = SecretBytes.Allocate(plaintextLength);
        try
        {
            using var gcm = new AesGcm(key.Span, TagLength);
            // Sequence number 0, so the nonce is base_nonce XOR 0 = base_nonce (RFC 9180 §5.2 ComputeNonce).
            gcm.Decrypt(nonce, ciphertext[..plaintextLength], ciphertext[plaintextLength..], plaintext.Span, aad);
            return plaintext;
        }
        catch
        {
            // AesGcm zeroes its output on tag mismatch, but dispose anyway so nothing half-written escapes.
            plaintext.Dispose();
            throw;
        }
    }

    /// <summary>True when <paramref name="encoded"/> is a SEC1 uncompressed point on P-256 that HPKE can seal to.</summary>
    public static bool IsValidPublicKey(ReadOnlySpan<byte> encoded)
    {
        try
        {
            using var key = ImportPublicKey(encoded, "public key");
            return true;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    /// <summary>
    /// Serializes the public half of a P-256 key as SEC1 uncompressed (<c>0x04 ‖ X ‖ Y</c>, 65 bytes), which is
    /// RFC 9180's <c>SerializePublicKey</c> for this KEM.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not a P-256 key.</exception>
    public static byte[] ExportPublicKey(ECDiffieHellman key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var parameters = key.ExportParameters(includePrivateParameters: false);
        if (!IsP256(parameters.Curve))
            throw new ArgumentException("HPKE here uses DHKEM(P-256); the key is on a different curve.", nameof(key));

        var x = parameters.Q.X ?? throw new CryptographicException("The key has no public point.");
        var y = parameters.Q.Y ?? throw new CryptographicException("The key has no public point.");
        if (x.Length > CoordinateLength || y.Length > CoordinateLength)
            throw new CryptographicException("The key's public point has an out-of-range coordinate.");

        // Coordinates are fixed-width big-endian in SEC1; some providers drop leading zero bytes, so right-align
        // each one in its 32-byte slot (the array is zero-filled, which supplies the padding).
        var encoded = new byte[PublicKeyLength];
        encoded[0] = Sec1Uncompressed;
        x.CopyTo(encoded.AsSpan(1 + CoordinateLength - x.Length, x.Length));
        y.CopyTo(encoded.AsSpan(1 + 2 * CoordinateLength - y.Length, y.Length));
        return encoded;
    }

    private static HpkeSealed SealCore(ECDiffieHellman ephemeral, ReadOnlySpan<byte> recipientPublicKey, ReadOnlySpan<byte> info, ReadOnlySpan<byte> aad, ReadOnlySpan<byte> plaintext, HpkeAead aead, int keyLength)
    {
        var (enc, sharedSecret) = Encap(ephemeral, recipientPublicKey);
        using (sharedSecret)
        {
            using var key = SecretBytes.Allocate(keyLength);
            Span<byte> nonce = stackalloc byte[NonceLength];
            KeySchedule(sharedSecret.Span, info, aead, key.Span, nonce);

            var ciphertext = new byte[plaintext.Length + TagLength];
            using var gcm = new AesGcm(key.Span, TagLength);
            // Sequence number 0, so the nonce is base_nonce XOR 0 = base_nonce (RFC 9180 §5.2 ComputeNonce).
            gcm.Encrypt(nonce, plaintext, ciphertext.AsSpan(0, plaintext.Length), ciphertext.AsSpan(plaintext.Length), aad);
            return new HpkeSealed(enc, ciphertext);
        }
    }

    // RFC 9180 §4.1 Encap: DH with the recipient, then bind the result to both public keys via kem_context.
    private static (byte[] Enc, SecretBytes SharedSecret) Encap(ECDiffieHellman ephemeral, ReadOnlySpan<byte> recipientPublicKey)
    {
        // Export first: this also rejects an ephemeral key on the wrong curve before any secret is made.
        var enc = ExportPublicKey(ephemeral);
        using var recipient = ImportPublicKey(recipientPublicKey, "recipient public key");
        var dh = ephemeral.DeriveRawSecretAgreement(recipient.PublicKey);
        try
        {
            return (enc, ExtractAndExpand(dh, enc, recipientPublicKey));
        }
        finally
        {
            // The runtime hands the raw DH output back in an ordinary array; wipe it as soon as it has been used.
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    // RFC 9180 §4.1 Decap: the same DH from the other side, with the same kem_context = enc ‖ pkRm.
    private static SecretBytes Decap(ECDiffieHellman recipient, ReadOnlySpan<byte> enc)
    {
        var recipientPublicKey = ExportPublicKey(recipient);
        using var ephemeral = ImportPublicKey(enc, "encapsulated key (enc)");
        var dh = recipient.DeriveRawSecretAgreement(ephemeral.PublicKey);
        try
        {
            return ExtractAndExpand(dh, enc, recipientPublicKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(dh);
        }
    }

    // RFC 9180 §4.1 ExtractAndExpand(dh, kem_context), under the KEM's own suite_id = "KEM" ‖ I2OSP(kem_id, 2).
    private static SecretBytes ExtractAndExpand(ReadOnlySpan<byte> dh, ReadOnlySpan<byte> enc, ReadOnlySpan<byte> recipientPublicKey)
    {
        Span<byte> suiteId = stackalloc byte[5];
        "KEM"u8.CopyTo(suiteId);
        BinaryPrimitives.WriteUInt16BigEndian(suiteId[3..], KemId);

        // kem_context is public (two public keys), so an ordinary buffer is fine.
        Span<byte> kemContext = stackalloc byte[2 * PublicKeyLength];
        enc.CopyTo(kemContext);
        recipientPublicKey.CopyTo(kemContext[PublicKeyLength..]);

        using var eaePrk = SecretBytes.Allocate(HashLength);
        LabeledExtract(suiteId, [], "eae_prk"u8, dh, eaePrk.Span);

        var sharedSecret = SecretBytes.Allocate(SharedSecretLength);
        try
        {
            LabeledExpand(suiteId, eaePrk.Span, "shared_secret"u8, kemContext, sharedSecret.Span);
            return sharedSecret;
        }
        catch
        {
            sharedSecret.Dispose();
            throw;
        }
    }

    // RFC 9180 §5.1 KeySchedule for mode_base with the default (empty) psk and psk_id.
    // The exporter_secret is not derived: single-shot seal/open never exports.
    private static void KeySchedule(ReadOnlySpan<byte> sharedSecret, ReadOnlySpan<byte> info, HpkeAead aead, Span<byte> key, Span<byte> baseNonce)
    {
        // suite_id = "HPKE" ‖ I2OSP(kem_id, 2) ‖ I2OSP(kdf_id, 2) ‖ I2OSP(aead_id, 2): every derived value is bound
        // to the whole suite, so keys made for one AEAD are unrelated to those made for the other.
        Span<byte> suiteId = stackalloc byte[10];
        "HPKE"u8.CopyTo(suiteId);
        BinaryPrimitives.WriteUInt16BigEndian(suiteId[4..], KemId);
        BinaryPrimitives.WriteUInt16BigEndian(suiteId[6..], KdfId);
        BinaryPrimitives.WriteUInt16BigEndian(suiteId[8..], (ushort)aead);

        // key_schedule_context = mode ‖ psk_id_hash ‖ info_hash. Everything in it is public.
        Span<byte> context = stackalloc byte[1 + 2 * HashLength];
        context[0] = ModeBase;
        LabeledExtract(suiteId, [], "psk_id_hash"u8, [], context.Slice(1, HashLength));
        LabeledExtract(suiteId, [], "info_hash"u8, info, context.Slice(1 + HashLength, HashLength));

        // secret = LabeledExtract(shared_secret, "secret", psk): the shared secret is the salt and the empty psk the ikm.
        using var secret = SecretBytes.Allocate(HashLength);
        LabeledExtract(suiteId, sharedSecret, "secret"u8, [], secret.Span);

        LabeledExpand(suiteId, secret.Span, "key"u8, context, key);
        LabeledExpand(suiteId, secret.Span, "base_nonce"u8, context, baseNonce);
    }

    // RFC 9180 §4: LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm).
    private static void LabeledExtract(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> salt, ReadOnlySpan<byte> label, ReadOnlySpan<byte> ikm, Span<byte> prk)
    {
        // The labeled ikm embeds the DH output, so it lives in a pinned, self-zeroing buffer.
        using var labeledIkm = SecretBytes.Allocate(VersionLabel.Length + suiteId.Length + label.Length + ikm.Length);
        var destination = labeledIkm.Span;
        VersionLabel.CopyTo(destination);
        destination = destination[VersionLabel.Length..];
        suiteId.CopyTo(destination);
        destination = destination[suiteId.Length..];
        label.CopyTo(destination);
        ikm.CopyTo(destination[label.Length..]);

        // HKDF-Extract with an empty salt is HMAC keyed with an empty key, which HMAC pads to HashLen zero bytes,
        // exactly the RFC 5869 default the RFC relies on.
        HKDF.Extract(HashAlgorithmName.SHA256, labeledIkm.Span, salt, prk);
    }

    // RFC 9180 §4: LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L).
    private static void LabeledExpand(ReadOnlySpan<byte> suiteId, ReadOnlySpan<byte> prk, ReadOnlySpan<byte> label, ReadOnlySpan<byte> info, Span<byte> output)
    {
        // The labeled info is built only from public values (contexts and public keys), so no wiping is needed.
        var labeledInfo = new byte[2 + VersionLabel.Length + suiteId.Length + label.Length + info.Length];
        var destination = labeledInfo.AsSpan();
        BinaryPrimitives.WriteUInt16BigEndian(destination, checked((ushort)output.Length));
        destination = destination[2..];
        VersionLabel.CopyTo(destination);
        destination = destination[VersionLabel.Length..];
        suiteId.CopyTo(destination);
        destination = destination[suiteId.Length..];
        label.CopyTo(destination);
        info.CopyTo(destination[label.Length..]);

        HKDF.Expand(HashAlgorithmName.SHA256, prk, output, labeledInfo);
    }

    // RFC 9180 §7.1.4 requires (partial) public key validation for NIST curves: right encoding, coordinates in
    // range, point on the curve. ImportParameters performs the on-curve and range checks, so this only adds the
    // encoding checks and turns every failure into one clear message.
    private static ECDiffieHellman ImportPublicKey(ReadOnlySpan<byte> encoded, string what)
    {
        if (encoded.Length != PublicKeyLength)
            throw new CryptographicException($"The {what} must be a {PublicKeyLength}-byte SEC1 uncompressed P-256 point; got {encoded.Length} bytes.");
        if (encoded[0] != Sec1Uncompressed)
            throw new CryptographicException($"The {what} must be SEC1 uncompressed (first byte 0x04); got 0x{encoded[0]:x2}.");

        var parameters = new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint
            {
                X = encoded.Slice(1, CoordinateLength).ToArray(),
                Y = encoded.Slice(1 + CoordinateLength, CoordinateLength).ToArray(),
            },
        };

        var key = ECDiffieHellman.Create();
        try
        {
            key.ImportParameters(parameters);
            return key;
        }
        catch (CryptographicException e)
        {
            key.Dispose();
            throw new CryptographicException($"The {what} is not a valid point on P-256.", e);
        }
    }

    private static bool IsP256(ECCurve curve) =>
        curve.IsNamed
        && (curve.Oid.Value == P256Oid || curve.Oid.FriendlyName is "nistP256" or "ECDSA_P256" or "ECDH_P256" or "prime256v1" or "secp256r1");

    // Nk from RFC 9180 §7.3; also the guard that aead is one of the two supported values before it enters suite_id.
    private static int KeyLength(HpkeAead aead) => aead switch
    {
        HpkeAead.Aes128Gcm => 16,
        HpkeAead.Aes256Gcm => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(aead), aead, "Only AES-128-GCM and AES-256-GCM are supported."),
    };

    private static void RequirePlaintext(ReadOnlySpan<byte> plaintext)
    {
        // Open returns a SecretBytes, which cannot be empty; refusing here keeps Seal from producing
        // something this class could not open.
        if (plaintext.IsEmpty)
            throw new ArgumentException("HPKE plaintext must not be empty.", nameof(plaintext));
    }
}
