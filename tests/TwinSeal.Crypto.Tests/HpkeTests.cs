using System.Security.Cryptography;

namespace TwinSeal.Crypto.Tests;

public sealed class HpkeTests
{
    // RFC 9180 Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, mode_base, and its first
    // encryption (sequence number 0). Copied from draft-irtf-cfrg-hpke.md in github.com/cfrg/draft-irtf-cfrg-hpke
    // (commit b1f7cb0c, the source of the RFC text), and identical to the same entry in the RFC's test-vectors.json.
    private static class A3
    {
        public const string Info = "4f6465206f6e2061204772656369616e2055726e";
        public const string SkEm = "4995788ef4b9d6132b249ce59a77281493eb39af373d236a1fe415cb0c2d7beb";
        public const string PkEm = "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4";
        public const string SkRm = "f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2";
        public const string PkRm = "04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a826a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0";
        public const string Enc = "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4";
        public const string Aad = "436f756e742d30";
        public const string Pt = "4265617574792069732074727574682c20747275746820626561757479";
        public const string Ct = "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f9076ac232e3ab2523f39513434";
    }

    // The mode 0 / kem 16 / kdf 1 / aead 2 (AES-256-GCM) entry of the RFC 9180 test-vectors.json (CFRG commit
    // 5f503c5), sequence number 0. The RFC appendix does not print this suite; the copy read is
    // hpke/testdata/vectors_rfc9180_5f503c5.json.gz in github.com/cloudflare/circl.
    private static class P256Aes256
    {
        public const string Info = "4f6465206f6e2061204772656369616e2055726e";
        public const string SkEm = "90345e3a1d116c1dd39ae76d95ab858c142223a63e44f8f85318cfa91a84858e";
        public const string PkEm = "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0";
        public const string SkRm = "317f915db7bc629c48fe765587897e01e282d3e8445f79f27f65d031a88082b2";
        public const string PkRm = "04abc7e49a4c6b3566d77d0304addc6ed0e98512ffccf505e6a8e3eb25c685136f853148544876de76c0f2ef99cdc3a05ccf5ded7860c7c021238f9e2073d2356c";
        public const string Enc = "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0";
        public const string Aad = "436f756e742d30";
        public const string Pt = "4265617574792069732074727574682c20747275746820626561757479";
        public const string Ct = "58c61a45059d0c5704560e9d88b564a8b63f1364b8d1fcb3c4c6ddc1d291742465e902cd216f8908da49f8f96f";
    }

    private static readonly byte[] Info = "TwinSeal HPKE test info"u8.ToArray();
    private static readonly byte[] Aad = "TwinSeal HPKE test aad"u8.ToArray();
    private static readonly byte[] Plaintext = "a data key travelling to the enclave"u8.ToArray();

    [Fact]
    public void Seal_with_the_RFC_9180_A3_ephemeral_key_reproduces_enc_and_ciphertext()
    {
        using var ephemeral = ImportPrivateKey(A3.SkEm, A3.PkEm);

        var sealed_ = Hpke.Seal(ephemeral, Hex(A3.PkRm), Hex(A3.Info), Hex(A3.Aad), Hex(A3.Pt), HpkeAead.Aes128Gcm);

        Assert.Equal(Hex(A3.Enc), sealed_.Enc);
        Assert.Equal(Hex(A3.Ct), sealed_.Ciphertext);
    }

    [Fact]
    public void Open_with_the_RFC_9180_A3_recipient_key_returns_the_plaintext()
    {
        using var recipient = ImportPrivateKey(A3.SkRm, A3.PkRm);

        using var opened = Hpke.Open(recipient, Hex(A3.Enc), Hex(A3.Info), Hex(A3.Aad), Hex(A3.Ct), HpkeAead.Aes128Gcm);

        Assert.Equal(Hex(A3.Pt), opened.Span.ToArray());
    }

    [Fact]
    public void Seal_with_the_RFC_9180_P256_AES256_vector_ephemeral_key_reproduces_enc_and_ciphertext()
    {
        using var ephemeral = ImportPrivateKey(P256Aes256.SkEm, P256Aes256.PkEm);

        var sealed_ = Hpke.Seal(ephemeral, Hex(P256Aes256.PkRm), Hex(P256Aes256.Info), Hex(P256Aes256.Aad), Hex(P256Aes256.Pt), HpkeAead.Aes256Gcm);

        Assert.Equal(Hex(P256Aes256.Enc), sealed_.Enc);
        Assert.Equal(Hex(P256Aes256.Ct), sealed_.Ciphertext);
    }

    [Fact]
    public void Open_with_the_RFC_9180_P256_AES256_vector_recipient_key_returns_the_plaintext()
    {
        using var recipient = ImportPrivateKey(P256Aes256.SkRm, P256Aes256.PkRm);

        using var opened = Hpke.Open(recipient, Hex(P256Aes256.Enc), Hex(P256Aes256.Info), Hex(P256Aes256.Aad), Hex(P256Aes256.Ct), HpkeAead.Aes256Gcm);

        Assert.Equal(Hex(P256Aes256.Pt), opened.Span.ToArray());
    }

    [Fact]
    public void ExportPublicKey_gives_the_SEC1_uncompressed_encoding_of_the_vector_key()
    {
        using var recipient = ImportPrivateKey(A3.SkRm, A3.PkRm);

        Assert.Equal(Hex(A3.PkRm), Hpke.ExportPublicKey(recipient));
    }

    [Fact]
    public void Seal_then_Open_with_AES_256_GCM_round_trips()
    {
        using var recipient = NewKey();

        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext, HpkeAead.Aes256Gcm);
        using var opened = Hpke.Open(recipient, sealed_.Enc, Info, Aad, sealed_.Ciphertext, HpkeAead.Aes256Gcm);

        Assert.Equal(65, sealed_.Enc.Length);
        Assert.Equal(0x04, sealed_.Enc[0]);
        Assert.Equal(Plaintext.Length + 16, sealed_.Ciphertext.Length);
        Assert.Equal(Plaintext, opened.Span.ToArray());
    }

    [Fact]
    public void Open_throws_when_a_ciphertext_byte_is_changed()
    {
        using var recipient = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext);

        var ciphertext = Flip(sealed_.Ciphertext, 0);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(recipient, sealed_.Enc, Info, Aad, ciphertext));
    }

    [Fact]
    public void Open_throws_when_an_enc_byte_is_changed()
    {
        using var recipient = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext);

        var enc = Flip(sealed_.Enc, 10);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(recipient, enc, Info, Aad, sealed_.Ciphertext));
    }

    [Fact]
    public void Open_throws_when_an_aad_byte_is_changed()
    {
        using var recipient = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext);

        var aad = Flip(Aad, 0);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(recipient, sealed_.Enc, Info, aad, sealed_.Ciphertext));
    }

    [Fact]
    public void Open_throws_when_an_info_byte_is_changed()
    {
        using var recipient = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext);

        var info = Flip(Info, 0);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(recipient, sealed_.Enc, info, Aad, sealed_.Ciphertext));
    }

    [Fact]
    public void Open_throws_with_a_different_recipient_key()
    {
        using var recipient = NewKey();
        using var someoneElse = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(someoneElse, sealed_.Enc, Info, Aad, sealed_.Ciphertext));
    }

    [Fact]
    public void Open_throws_when_the_AEAD_differs_from_the_one_used_to_seal()
    {
        using var recipient = NewKey();
        var sealed_ = Hpke.Seal(Hpke.ExportPublicKey(recipient), Info, Aad, Plaintext, HpkeAead.Aes128Gcm);

        Assert.ThrowsAny<CryptographicException>(() => Hpke.Open(recipient, sealed_.Enc, Info, Aad, sealed_.Ciphertext, HpkeAead.Aes256Gcm));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(33)]
    [InlineData(64)]
    [InlineData(66)]
    public void Seal_throws_for_a_public_key_of_the_wrong_length(int length)
    {
        var publicKey = new byte[length];
        if (length > 0)
            publicKey[0] = 0x04;

        Assert.Throws<CryptographicException>(() => Hpke.Seal(publicKey, Info, Aad, Plaintext));
    }

    [Theory]
    [InlineData(0x02)]
    [InlineData(0x03)]
    [InlineData(0x00)]
    [InlineData(0x06)]
    public void Seal_throws_for_a_public_key_without_the_uncompressed_prefix(byte prefix)
    {
        var publicKey = Hex(A3.PkRm);
        publicKey[0] = prefix;

        Assert.Throws<CryptographicException>(() => Hpke.Seal(publicKey, Info, Aad, Plaintext));
    }

    [Fact]
    public void Seal_throws_for_a_public_key_that_is_not_on_the_curve()
    {
        // A valid point with Y's last byte changed: for a given X only two Y values lie on the curve.
        var publicKey = Flip(Hex(A3.PkRm), 64);

        Assert.Throws<CryptographicException>(() => Hpke.Seal(publicKey, Info, Aad, Plaintext));
    }

    private static ECDiffieHellman ImportPrivateKey(string privateKeyHex, string publicKeyHex)
    {
        var publicKey = Hex(publicKeyHex);
        return ECDiffieHellman.Create(new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            D = Hex(privateKeyHex),
            Q = new ECPoint { X = publicKey[1..33], Y = publicKey[33..65] },
        });
    }

    private static ECDiffieHellman NewKey() => ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    private static byte[] Flip(byte[] source, int index)
    {
        var copy = (byte[])source.Clone();
        copy[index] ^= 0x01;
        return copy;
    }
}
