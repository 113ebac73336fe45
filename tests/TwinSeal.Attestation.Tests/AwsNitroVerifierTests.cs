using System.Formats.Cbor;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Attestation.AwsNitro;
using TwinSeal.Attestation.Sim;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>AWS Nitro Enclaves attestation documents: the real evervault sample (SOURCES.md) and synthetic documents.</summary>
public sealed class AwsNitroVerifierTests
{
    private const string Platform = "aws-nitro";
    private const string Pcr0 = "d265a83faa7b4fa0d73b82b6d06253e894445922937d0ee5a74fe4891da9817611a71e71b98e5329232902de3cf419af";
    private const string Pcr1 = "bcdf05fefccaa8e55bf2c8d6dee9e79bbff31e34bf28a99aa19e6b29c37ee80b214a414b7607236edf26fcb78654e63f";
    private const string Pcr2 = "e4f634d24ad83b7f6e49fe283bafdb220f6252fb4a278a858e19d15b7cd0f263b9168ed0bacefb4444266df9f9a77f24";
    private const string Pcr8 = "97c5395a83c0d6a04d53ff962663c714c178c24500bf97f78456ed3721d922cf3f940614da4bb90107c439bc4a1443ca";

    private static readonly DateTimeOffset InsideLeafLifetime = new(2023, 1, 18, 15, 15, 14, TimeSpan.Zero);

    private static byte[] SampleDocument() => Samples.Read(Platform, "evervault-2023-01-18-nondebug.cose");

    private static X509Certificate2 AwsRoot() => PemCertificate.Load(Path.Combine(Samples.Dir(Platform), "aws-nitro-enclaves-root.pem"));

    private static AwsNitroVerifier VerifierAt(DateTimeOffset now)
    {
        using var root = AwsRoot();
        return new AwsNitroVerifier(root, new AwsNitroFixedClock(now));
    }

    private static NormalisedClaims VerifySample() => VerifierAt(InsideLeafLifetime).Verify(new Evidence(Platform, SampleDocument()));

    private static EvidenceException Refusal(AwsNitroVerifier verifier, byte[] document)
        => Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence(Platform, document)));

    [Fact]
    public void RealDocument_VerifiesInsideItsCertificateLifetime_WithPcr0AsTheMeasurement()
    {
        var claims = VerifySample();

        Assert.Equal(Platform, claims.Platform);
        Assert.False(claims.Simulated);
        Assert.False(claims.Debug);
        Assert.Equal(Pcr0, claims.Measurement);
    }

    [Fact]
    public void RealDocument_ReportsPcr0To8AndTheModuleIdAsPlatformTests()
    {
        var tests = VerifySample().PlatformTests;

        Assert.Equal(Pcr0, tests["pcr0"]);
        Assert.Equal(Pcr1, tests["pcr1"]);
        Assert.Equal(Pcr2, tests["pcr2"]);
        Assert.Equal(Pcr8, tests["pcr8"]);
        Assert.Equal(
            ["module_id", "pcr0", "pcr1", "pcr2", "pcr3", "pcr4", "pcr5", "pcr6", "pcr7", "pcr8"],
            tests.Keys.Order(StringComparer.Ordinal));
        Assert.StartsWith("i-", tests["module_id"], StringComparison.Ordinal);
        Assert.All(tests.Where(t => t.Key != "module_id"), t => Assert.Matches("^[0-9a-f]{96}$", t.Value));
    }

    [Fact]
    public void RealDocument_ReportDataIsItsUserData_TheSpkiOfTheTlsCertificateKey()
    {
        using var tls = X509CertificateLoader.LoadCertificate(Samples.Read(Platform, "evervault-2023-01-18-nondebug-tlscert.der"));

        var claims = VerifySample();

        Assert.Equal(tls.PublicKey.ExportSubjectPublicKeyInfo(), claims.ReportData);
    }

    [Fact]
    public void RealDocument_IssuedAtIsTheDocumentTimestamp()
    {
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_674_047_239_280), VerifySample().IssuedAt);
    }

    [Fact]
    public void RealDocument_IsUntrusted_AfterItsSigningCertificateExpires()
    {
        var e = Refusal(VerifierAt(new DateTimeOffset(2023, 1, 18, 17, 0, 0, TimeSpan.Zero)), SampleDocument());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("does not chain to the pinned AWS Nitro root", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealDocument_IsUntrusted_BeforeItsSigningCertificateWasIssued()
    {
        var e = Refusal(VerifierAt(new DateTimeOffset(2023, 1, 18, 13, 0, 0, TimeSpan.Zero)), SampleDocument());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("does not chain to the pinned AWS Nitro root", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealDocument_WithOneFlippedPayloadByte_FailsTheSignatureCheck()
    {
        var document = SampleDocument();
        var at = document.AsSpan().IndexOf(Convert.FromHexString(Pcr0));
        Assert.True(at > 0);
        document[at + 10] ^= 0x01;

        var e = Refusal(VerifierAt(InsideLeafLifetime), document);

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("signature does not verify", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealDocument_IsUntrusted_UnderAnotherPinnedRoot()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var req = new CertificateRequest("CN=not.aws.nitro-enclaves", key, HashAlgorithmName.SHA384);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var otherRoot = req.CreateSelfSigned(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2040, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var verifier = new AwsNitroVerifier(otherRoot, new AwsNitroFixedClock(InsideLeafLifetime));

        var e = Refusal(verifier, SampleDocument());

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("cabundle[0]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RealDocument_TruncatedAtAnyLength_IsInvalid()
    {
        var document = SampleDocument();
        var verifier = VerifierAt(InsideLeafLifetime);

        for (var length = 0; length < document.Length; length++)
        {
            var e = Refusal(verifier, document[..length]);
            Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        }
    }

    [Fact]
    public void RealDocument_WithBytesFlippedThroughout_IsAlwaysRefusedWithAnEvidenceException()
    {
        var original = SampleDocument();
        var verifier = VerifierAt(InsideLeafLifetime);

        // Every 7th byte (each attempt may build a certificate chain): header, every field, every certificate, the signature.
        for (var at = 0; at < original.Length; at += 7)
        {
            var document = (byte[])original.Clone();
            document[at] ^= 0x40;
            var e = Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence(Platform, document)));
            Assert.Contains(e.Refusal, new[] { KeyUseRefusal.EvidenceInvalid, KeyUseRefusal.EvidenceUntrusted });
        }
    }

    [Fact]
    public void GarbageAndOtherCbor_AreInvalid()
    {
        var verifier = VerifierAt(InsideLeafLifetime);
        var random = new Random(18);
        List<byte[]> inputs = [[], [0x84], [0xd2], [0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40], [0xf6], new byte[70_000]];
        inputs.AddRange(Enumerable.Range(0, 200).Select(i => { var b = new byte[1 + random.Next(512)]; random.NextBytes(b); return b; }));
        var w = new CborWriter();
        w.WriteStartArray(4); w.WriteByteString([0xa1, 0x01, 0x38, 0x22]); w.WriteStartMap(0); w.WriteEndMap(); w.WriteByteString([0xa0]); w.WriteByteString(new byte[96]); w.WriteEndArray();
        inputs.Add(w.Encode()); // ES384 COSE_Sign1 around an empty map

        foreach (var input in inputs)
        {
            var e = Refusal(verifier, input);
            Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        }
    }

    [Fact]
    public void EvidenceTaggedForAnotherPlatform_IsInvalid()
    {
        var e = Assert.Throws<EvidenceException>(() => VerifierAt(InsideLeafLifetime).Verify(new Evidence("sim", SampleDocument())));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
    }

    [Fact]
    public void SyntheticTaggedDocument_Verifies_AndItsReportDataIsThe64ByteBindingInUserData()
    {
        using var pki = new AwsNitroTestPki();
        var nonce = RandomNumberGenerator.GetBytes(32);
        var publicKey = RandomNumberGenerator.GetBytes(65);
        var evidence = pki.Sign(new Dictionary<int, byte[]> { [0] = AwsNitroTestPki.Pcr(1), [1] = AwsNitroTestPki.Pcr(2), [2] = AwsNitroTestPki.Pcr(3) }, ReportDataBinding.Compute(nonce, publicKey));
        Assert.Equal(0xd2, evidence.Document[0]); // CBOR tag 18

        var claims = new AwsNitroVerifier(pki.Root, new AwsNitroFixedClock(AwsNitroTestPki.Now)).Verify(evidence);

        Assert.True(ReportDataBinding.Matches(claims.ReportData, nonce, publicKey));
        Assert.Equal(Convert.ToHexStringLower(AwsNitroTestPki.Pcr(1)), claims.Measurement);
    }

    [Fact]
    public void SyntheticDocumentWithoutUserData_HasEmptyReportData()
    {
        using var pki = new AwsNitroTestPki();
        var evidence = pki.Sign(new Dictionary<int, byte[]> { [0] = AwsNitroTestPki.Pcr(1), [1] = AwsNitroTestPki.Pcr(2), [2] = AwsNitroTestPki.Pcr(3) }, userData: null);

        var claims = new AwsNitroVerifier(pki.Root, new AwsNitroFixedClock(AwsNitroTestPki.Now)).Verify(evidence);

        Assert.Empty(claims.ReportData);
    }

    [Fact]
    public void DebugModeDocument_IsRefusedByDefault()
    {
        using var pki = new AwsNitroTestPki();
        var evidence = pki.Sign(DebugPcrs(), new byte[64]);

        var e = Assert.Throws<EvidenceException>(() => new AwsNitroVerifier(pki.Root, new AwsNitroFixedClock(AwsNitroTestPki.Now)).Verify(evidence));

        Assert.Equal(KeyUseRefusal.EvidenceInvalid, e.Refusal);
        Assert.Contains("debug mode", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DebugModeDocument_IsAcceptedWhenDebugIsAllowed_AndMarkedDebug()
    {
        using var pki = new AwsNitroTestPki();
        var evidence = pki.Sign(DebugPcrs(), new byte[64]);
        var verifier = new AwsNitroVerifier(pki.Root, new AwsNitroFixedClock(AwsNitroTestPki.Now), new AwsNitroVerifierOptions { AllowDebug = true });

        var claims = verifier.Verify(evidence);

        Assert.True(claims.Debug);
        Assert.Equal(new string('0', 96), claims.Measurement);
    }

    [Fact]
    public void DocumentWhoseCaBundleDoesNotStartWithThePinnedRoot_IsUntrusted_EvenIfItsChainBuilds()
    {
        using var pki = new AwsNitroTestPki();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var stranger = new CertificateRequest("CN=stranger", key, HashAlgorithmName.SHA384).CreateSelfSigned(AwsNitroTestPki.Now.AddDays(-1), AwsNitroTestPki.Now.AddDays(1));
        var evidence = pki.Sign(new Dictionary<int, byte[]> { [0] = AwsNitroTestPki.Pcr(1), [1] = AwsNitroTestPki.Pcr(2), [2] = AwsNitroTestPki.Pcr(3) }, new byte[64], caBundleRoot: stranger);

        var e = Assert.Throws<EvidenceException>(() => new AwsNitroVerifier(pki.Root, new AwsNitroFixedClock(AwsNitroTestPki.Now)).Verify(evidence));

        Assert.Equal(KeyUseRefusal.EvidenceUntrusted, e.Refusal);
        Assert.Contains("cabundle[0]", e.Message, StringComparison.Ordinal);
    }

    private static Dictionary<int, byte[]> DebugPcrs() => new()
    {
        [0] = AwsNitroTestPki.Pcr(0),
        [1] = AwsNitroTestPki.Pcr(0),
        [2] = AwsNitroTestPki.Pcr(0),
        [3] = AwsNitroTestPki.Pcr(0),
        [4] = AwsNitroTestPki.Pcr(9),
    };
}
