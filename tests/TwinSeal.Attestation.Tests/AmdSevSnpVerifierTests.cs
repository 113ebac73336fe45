using System.Formats.Cbor;
using System.Security.Cryptography.X509Certificates;
using TwinSeal.Attestation.AmdSevSnp;
using TwinSeal.Protocol;

namespace TwinSeal.Attestation.Tests;

/// <summary>The SEV-SNP verifier on the real go-sev-guest Milan sample, pinned to AMD's real Milan ARK.</summary>
public sealed class AmdSevSnpVerifierTests
{
    // ---- the genuine sample ----

    [Fact]
    public void Sample_verifies_with_the_published_measurement_report_data_and_tcb()
    {
        var claims = SnpSample.Verifier(options: SnpSample.AllowDebug).Verify(SnpSample.Envelope().ToEvidence());

        Assert.Equal("amd-sev-snp", claims.Platform);
        Assert.False(claims.Simulated);
        Assert.Equal(SnpSample.Measurement, claims.Measurement);
        Assert.Equal([1, 2, 3, 4, 5, .. new byte[59]], claims.ReportData);
        Assert.Equal("2", claims.PlatformTests["tcb.bootloader"]);
        Assert.Equal("0", claims.PlatformTests["tcb.tee"]);
        Assert.Equal("5", claims.PlatformTests["tcb.snp"]);
        Assert.Equal("68", claims.PlatformTests["tcb.microcode"]);
    }

    [Fact]
    public void Sample_claims_name_product_signing_key_policy_vmpl_guest_svn_and_host_data()
    {
        var claims = SnpSample.Verifier(options: SnpSample.AllowDebug).Verify(SnpSample.Envelope().ToEvidence());

        Assert.Equal(new Dictionary<string, string>
        {
            ["product"] = "Milan",
            ["signing_key"] = "vcek",
            ["policy"] = "0x00000000000b0000",
            ["vmpl"] = "0",
            ["guest_svn"] = "0",
            ["host_data"] = new string('0', 64),
            ["tcb.bootloader"] = "2",
            ["tcb.tee"] = "0",
            ["tcb.snp"] = "5",
            ["tcb.microcode"] = "68",
        }, claims.PlatformTests);
    }

    [Fact]
    public void Sample_is_reported_as_a_debug_guest_issued_at_the_verifier_clock()
    {
        var claims = SnpSample.Verifier(options: SnpSample.AllowDebug).Verify(SnpSample.Envelope().ToEvidence());

        Assert.True(claims.Debug);
        Assert.Equal(SnpSample.ValidTime, claims.IssuedAt);
    }

    [Fact]
    public void Sample_chip_id_equals_the_vcek_hwid_extension()
    {
        using var vcek = X509CertificateLoader.LoadCertificate(SnpSample.Vcek);
        var hwId = vcek.Extensions["1.3.6.1.4.1.3704.1.4"]!.RawData;

        Assert.Equal(hwId, SevSnpReport.Parse(SnpSample.Report).ChipId.ToArray());
    }

    [Fact]
    public void Default_options_refuse_the_sample_because_it_is_a_debug_guest()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.DebugNotAllowed, SnpSample.Verifier(), SnpSample.Envelope());

        Assert.Contains("debug", message);
    }

    [Fact]
    public void Sample_verifies_with_certificates_from_the_local_cache_when_the_envelope_has_none()
    {
        var dir = Directory.CreateTempSubdirectory("twinseal-snp-cache-");
        try
        {
            var milan = Directory.CreateDirectory(Path.Combine(dir.FullName, "Milan"));
            File.Copy(SnpSample.AskArkPemPath, Path.Combine(milan.FullName, "ask.pem")); // KDS cert_chain: ASK then ARK
            var chipId = Convert.ToHexStringLower(SevSnpReport.Parse(SnpSample.Report).ChipId.Span);
            File.WriteAllBytes(Path.Combine(milan.FullName, $"vcek-{chipId}-4405000000000002.der"), SnpSample.Vcek);
            var verifier = SnpSample.Verifier(options: new SevSnpVerifierOptions { AllowDebug = true, CertificateCacheDirectory = dir.FullName });

            var claims = verifier.Verify(new SevSnpEvidence(SnpSample.Report, SevSnpProduct.Milan).ToEvidence());

            Assert.Equal(SnpSample.Measurement, claims.Measurement);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Envelope_without_a_vcek_and_without_a_cache_is_untrusted()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Vcek = null });

        Assert.Contains("VCEK", message);
    }

    [Fact]
    public void Envelope_carrying_the_pinned_ark_verifies()
    {
        var claims = SnpSample.Verifier(options: SnpSample.AllowDebug).Verify((SnpSample.Envelope() with { Ark = SnpSample.Ark }).ToEvidence());

        Assert.Equal(SnpSample.Measurement, claims.Measurement);
    }

    // ---- tampering ----

    [Theory]
    [InlineData(0x004)] // GUEST_SVN
    [InlineData(0x050)] // REPORT_DATA
    [InlineData(0x090)] // MEASUREMENT
    [InlineData(0x0C0)] // HOST_DATA
    [InlineData(0x180)] // REPORTED_TCB
    [InlineData(0x1A0)] // CHIP_ID
    [InlineData(0x29F)] // last signed byte
    public void Flipped_byte_in_the_signed_area_is_untrusted(int offset)
    {
        var report = SnpSample.Report;
        report[offset] ^= 0x01;

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Report = report });

        Assert.Contains("report signature", message);
    }

    [Theory]
    [InlineData(0x2A0)] // R, least significant byte
    [InlineData(0x2CF)] // R, most significant byte
    [InlineData(0x2E8)] // S
    public void Flipped_byte_of_the_report_signature_is_untrusted(int offset)
    {
        var report = SnpSample.Report;
        report[offset] ^= 0x01;

        SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug), SnpSample.Envelope() with { Report = report });
    }

    [Fact]
    public void Flipped_byte_of_the_vcek_signature_is_untrusted()
    {
        var vcek = SnpSample.Vcek;
        vcek[^10] ^= 0x01;

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Vcek = vcek });

        Assert.Contains("VCEK certificate's signature", message);
    }

    [Fact]
    public void Flipped_byte_of_the_ask_signature_is_untrusted()
    {
        var ask = SnpSample.Ask;
        ask[^10] ^= 0x01;

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Ask = ask });

        Assert.Contains("ASK certificate's signature", message);
    }

    [Fact]
    public void Ark_sent_in_place_of_the_ask_is_untrusted()
    {
        SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Ask = SnpSample.Ark });
    }

    [Fact]
    public void Ask_pinned_in_place_of_the_ark_is_rejected_at_construction()
    {
        Assert.Throws<ArgumentException>(() => SnpSample.Verifier(pinnedArk: SnpSample.Ask));
    }

    [Fact]
    public void Another_ark_pinned_for_milan_makes_the_sample_untrusted()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted,
            SnpSample.Verifier(options: SnpSample.AllowDebug, pinnedArk: SyntheticAmd.Milan.Ark), SnpSample.Envelope());

        Assert.Contains("ASK certificate's signature does not verify with the ARK", message);
    }

    [Fact]
    public void Envelope_ark_other_than_the_pinned_one_is_untrusted()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Ark = SyntheticAmd.Milan.Ark });

        Assert.Contains("pinned", message);
    }

    [Fact]
    public void Product_without_a_pinned_ark_is_untrusted()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Product = SevSnpProduct.Genoa });

        Assert.Contains("Genoa", message);
    }

    [Fact]
    public void Milan_ark_cannot_be_pinned_as_the_genoa_ark()
    {
        var e = Assert.Throws<ArgumentException>(() => new SevSnpVerifier(new Dictionary<SevSnpProduct, X509Certificate2>
        {
            [SevSnpProduct.Genoa] = X509CertificateLoader.LoadCertificate(SnpSample.Ark),
        }, new SnpFixedClock(SnpSample.ValidTime)));

        Assert.Contains("ARK-Genoa", e.Message);
    }

    // ---- time ----

    [Theory]
    [InlineData("2030-01-01T00:00:00Z")] // VCEK expired 2029-09-24
    [InlineData("2022-09-23T00:00:00Z")] // VCEK not yet valid (2022-09-24)
    public void Vcek_outside_its_validity_is_untrusted(string at)
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted,
            SnpSample.Verifier(DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture), SnpSample.AllowDebug), SnpSample.Envelope());

        Assert.Contains("VCEK", message);
    }

    [Fact]
    public void Ark_outside_its_validity_is_untrusted()
    {
        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceUntrusted,
            SnpSample.Verifier(new DateTimeOffset(2046, 1, 1, 0, 0, 0, TimeSpan.Zero), SnpSample.AllowDebug), SnpSample.Envelope());

        Assert.Contains("ARK", message);
    }

    // ---- malformed ----

    [Fact]
    public void Truncated_report_is_invalid()
    {
        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Report = SnpSample.Report[..1000] });
    }

    [Fact]
    public void Wrong_report_version_is_invalid()
    {
        var report = SnpSample.Report;
        report[0] = 9;

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(options: SnpSample.AllowDebug),
            SnpSample.Envelope() with { Report = report });

        Assert.Contains("version 9", message);
    }

    [Fact]
    public void Evidence_for_another_platform_is_invalid()
    {
        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(), new Evidence("sim", SnpSample.Envelope().Encode()));
    }

    [Fact]
    public void Raw_report_without_the_envelope_is_invalid()
    {
        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(), new Evidence("amd-sev-snp", SnpSample.Report));
    }

    [Fact]
    public void Envelope_round_trips_through_its_cbor_encoding()
    {
        var envelope = SnpSample.Envelope() with { Ark = SnpSample.Ark };

        var decoded = SevSnpEvidence.Decode(envelope.Encode());

        Assert.Equal(envelope.Report, decoded.Report);
        Assert.Equal(envelope.Vcek, decoded.Vcek);
        Assert.Equal(envelope.Ask, decoded.Ask);
        Assert.Equal(envelope.Ark, decoded.Ark);
        Assert.Equal(SevSnpProduct.Milan, decoded.Product);
        Assert.Null(decoded.Vlek);
    }

    [Fact]
    public void Envelope_with_an_unknown_key_is_invalid()
    {
        var w = new CborWriter();
        w.WriteStartMap(3);
        w.WriteTextString("report"); w.WriteByteString(SnpSample.Report);
        w.WriteTextString("product"); w.WriteTextString("Milan");
        w.WriteTextString("extra"); w.WriteByteString([1]);
        w.WriteEndMap();

        var message = SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(), new Evidence("amd-sev-snp", w.Encode()));

        Assert.Contains("extra", message);
    }

    [Fact]
    public void Envelope_with_a_repeated_key_is_invalid()
    {
        var w = new CborWriter(CborConformanceMode.Lax);
        w.WriteStartMap(3);
        w.WriteTextString("report"); w.WriteByteString(SnpSample.Report);
        w.WriteTextString("product"); w.WriteTextString("Milan");
        w.WriteTextString("report"); w.WriteByteString(SnpSample.Report);
        w.WriteEndMap();

        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(), new Evidence("amd-sev-snp", w.Encode()));
    }

    [Theory]
    [InlineData("milan")]
    [InlineData("Rome")]
    [InlineData("")]
    public void Envelope_with_an_unknown_product_is_invalid(string product)
    {
        var w = new CborWriter();
        w.WriteStartMap(2);
        w.WriteTextString("report"); w.WriteByteString(SnpSample.Report);
        w.WriteTextString("product"); w.WriteTextString(product);
        w.WriteEndMap();

        SnpAssert.Refused(KeyUseRefusal.EvidenceInvalid, SnpSample.Verifier(), new Evidence("amd-sev-snp", w.Encode()));
    }

    [Fact]
    public void Random_documents_of_various_lengths_are_refused_cleanly()
    {
        var verifier = SnpSample.Verifier(options: SnpSample.AllowDebug);
        var random = new Random(56860);
        foreach (var length in new[] { 0, 1, 2, 16, 100, 1184, 4000, 70_000 })
        {
            for (var i = 0; i < 10; i++)
            {
                var document = new byte[length];
                random.NextBytes(document);
                Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence("amd-sev-snp", document)));
            }
        }
    }

    [Fact]
    public void Random_reports_and_certificates_inside_a_well_formed_envelope_are_refused_cleanly()
    {
        var verifier = SnpSample.Verifier(options: SnpSample.AllowDebug);
        var random = new Random(1184);
        byte[] Noise(int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            return b;
        }
        for (var i = 0; i < 30; i++)
        {
            // 0: random report; 1: real header, scrambled body; 2: real report with a random VCEK (and sometimes ASK).
            var mode = i % 3;
            var report = mode == 0 ? Noise(1184) : SnpSample.Report;
            if (mode == 1)
                random.NextBytes(report.AsSpan(0x50, 0x250));
            var envelope = new SevSnpEvidence(report, SevSnpProduct.Milan,
                Vcek: mode == 2 ? Noise(random.Next(0, 2000)) : SnpSample.Vcek,
                Ask: mode == 2 && i % 2 == 0 ? Noise(random.Next(0, 3000)) : SnpSample.Ask);
            Assert.Throws<EvidenceException>(() => verifier.Verify(envelope.ToEvidence()));
        }
    }

    [Fact]
    public void Byte_flips_throughout_the_encoded_evidence_are_refused_cleanly()
    {
        var verifier = SnpSample.Verifier(options: SnpSample.AllowDebug);
        var document = SnpSample.Envelope().Encode();
        // Every third byte of the ~4 KiB document keeps this quick while touching every field and certificate.
        for (var i = 0; i < document.Length; i += 3)
        {
            var copy = (byte[])document.Clone();
            copy[i] ^= 0x01;
            Assert.Throws<EvidenceException>(() => verifier.Verify(new Evidence("amd-sev-snp", copy)));
        }
    }

    [Fact]
    public void Verifier_needs_at_least_one_pinned_ark()
    {
        Assert.Throws<ArgumentException>(() => new SevSnpVerifier(new Dictionary<SevSnpProduct, X509Certificate2>(), TimeProvider.System));
    }
}
